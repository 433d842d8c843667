//! API Gateway OpenAPI/Swagger export → routes.toml.
