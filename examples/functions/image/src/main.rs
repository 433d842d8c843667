//! `image`: a binary response, on `lambda_http`. `GET /image.png?size=N`
//! draws an N×N gradient PNG (default 64, at most 512); the body goes back
//! base64-encoded with `isBase64Encoded: true` and the gateway decodes it.

use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(image)).await
}

async fn image(req: Request) -> Result<Response<Body>, Error> {
    let size: u32 = req
        .query_string_parameters()
        .first("size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
        .clamp(1, 512);
    let mut pixels = Vec::with_capacity((size * size * 3) as usize);
    for y in 0..size {
        for x in 0..size {
            pixels.push((x * 255 / size) as u8);
            pixels.push((y * 255 / size) as u8);
            pixels.push(160);
        }
    }
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, size, size);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
    }
    Ok(Response::builder()
        .status(200)
        .header("content-type", "image/png")
        .body(Body::Binary(png))?)
}
