//! `GET /v1/services`: the visible services, a page at a time.
//!
//! `match` is a regex over the URI (the same dialect and compiled-size
//! limit as a native `List`); `limit` caps the page (at most, and by
//! default, `http.page_limit`); `after` resumes after a URI, the `next` of
//! the previous page. Pages are cut from the live view, so a service added
//! or removed between two pages shows or not according to where its URI
//! falls, as with any cursor over a changing table; a program that needs a
//! consistent set follows the watch instead.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{Api, ApiError, json::ServiceRecord};
use crate::matcher;

/// The query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesQuery {
    /// Regex over the URI; absent or empty: every service.
    #[serde(rename = "match")]
    pattern: Option<String>,
    /// Services in this page at most.
    limit: Option<usize>,
    /// Resume after this URI.
    after: Option<String>,
}

/// Answers one page.
pub async fn list(
    api: web::Data<Api>,
    query: web::Query<ServicesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let regex = match query.pattern.as_deref() {
        None | Some("") => None,
        Some(p) => Some(
            matcher::compile(p, api.max_regex_bytes)
                .map_err(|e| ApiError::BadRegex(e.to_string()))?,
        ),
    };
    let limit = match query.limit {
        None => api.page_limit,
        Some(0) => return Err(ApiError::BadRequest("limit: must be at least 1".into())),
        Some(n) if n > api.page_limit => {
            return Err(ApiError::BadRequest(format!(
                "limit: at most {} (http.page_limit)",
                api.page_limit
            )));
        }
        Some(n) => n,
    };
    let (page, more) = api.view.page(regex.as_ref(), query.after.as_deref(), limit);
    let next = more.then(|| page.last().map(|s| &*s.uri)).flatten();
    let services: Vec<_> = page.iter().map(|s| ServiceRecord(s)).collect();
    Ok(HttpResponse::Ok().json(Page { services, next }))
}

/// One page, written straight from the view's entries.
#[derive(Serialize)]
struct Page<'a> {
    services: Vec<ServiceRecord<'a>>,
    next: Option<&'a str>,
}
