//! `GET /v1/links`, `GET /v1/peers`, `GET /v1/node`: the cluster as this
//! node sees it, and who this node is.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{Api, ApiError, json};
use crate::supervisor::ListLinks;

/// The live links and the nodes reachable from here.
pub async fn links(api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    let view = api
        .supervisor
        .send(ListLinks)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let links: Vec<_> = view.links.iter().map(json::link).collect();
    Ok(HttpResponse::Ok().json(json!({
        "node": view.node,
        "links": links,
        "reachable": view.reachable,
    })))
}

/// The direct peers and the state of the link with each.
pub async fn peers(api: web::Data<Api>) -> HttpResponse {
    let peers: Vec<_> = api.directory.list().iter().map(json::peer).collect();
    HttpResponse::Ok().json(json!({ "peers": peers }))
}

/// This node's name, cluster, environment and version.
pub async fn node(api: web::Data<Api>) -> HttpResponse {
    let node = &api.node;
    HttpResponse::Ok().json(json!({
        "name": node.name,
        "cluster": node.cluster,
        "environment": node.environment,
        "version": env!("CARGO_PKG_VERSION"),
        "protocol_major": catalogue_proto::PROTOCOL_MAJOR,
        "protocol_minor": catalogue_proto::PROTOCOL_MINOR,
        "services": api.view.len(),
    }))
}
