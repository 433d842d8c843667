//! `[plans.*]`: usage plans' throttles and quotas, and per-route throttles
//! that must name a route.

use std::collections::BTreeMap;

use super::check_name;
use crate::config::error::Diagnostics;
use crate::config::model::{PlanConfig, QuotaConfig, QuotaPeriod, RouteConfig};
use crate::config::raw::{Map, RawPlan};
use crate::config::values::throttle;

pub(super) fn check_plans(
    raw: &Map<RawPlan>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, PlanConfig> {
    let mut out = BTreeMap::new();
    for (name, p) in raw {
        check_name(name, "plan", d);
        let quota = p.quota.as_ref().and_then(|q| {
            let qr = q.get_ref();
            let limit = *qr.limit.get_ref();
            if limit <= 0 {
                d.at(
                    qr.limit.span(),
                    "quota `limit` must be a positive number of requests",
                );
                return None;
            }
            let period = match qr.period.get_ref().as_str() {
                "day" => QuotaPeriod::Day,
                "week" => QuotaPeriod::Week,
                "month" => QuotaPeriod::Month,
                other => {
                    d.at(
                        qr.period.span(),
                        format!(
                            "quota period `{other}` is not one of \"day\", \"week\" or \"month\""
                        ),
                    );
                    return None;
                }
            };
            Some(QuotaConfig {
                limit: limit as u64,
                period,
            })
        });
        out.insert(
            name.get_ref().clone(),
            PlanConfig {
                name: name.get_ref().clone(),
                throttle: p.throttle.as_ref().and_then(|t| throttle(t, d)),
                route_throttles: p
                    .route_throttles
                    .iter()
                    .flatten()
                    .filter_map(|(k, t)| throttle(t, d).map(|t| (k.get_ref().clone(), t)))
                    .collect(),
                quota,
                description: p.description.clone(),
            },
        );
    }
    out
}

/// Every per-route throttle in a plan names a route that exists.
pub(super) fn check_plan_route_keys(
    plans: &Map<RawPlan>,
    routes: &[RouteConfig],
    d: &mut Diagnostics<'_>,
) {
    for p in plans.values() {
        for key in p.route_throttles.iter().flatten().map(|(k, _)| k) {
            if !routes.iter().any(|r| r.route_key() == *key.get_ref()) {
                d.at(
                    key.span(),
                    format!(
                        "no route `{}`; route throttles are keyed like \"GET /items/{{id}}\"",
                        key.get_ref()
                    ),
                );
            }
        }
    }
}
