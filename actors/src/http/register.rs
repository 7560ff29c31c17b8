//! Registration by lease, served only on the API's UNIX socket
//! (`http.socket`; docs/HTTP.md, "Registering with a lease"):
//!
//! * `PUT /v1/services` with `{"uri": ..., "attrs": {...}, "ttl": "30s"}`
//!   registers the service under a new lease and names it;
//! * `PUT /v1/leases/{id}` renews a lease for its TTL;
//! * `DELETE /v1/leases/{id}` ends it and withdraws the service.
//!
//! The caller is known by the socket's peer credentials (`SO_PEERCRED`,
//! read when the connection is accepted, [`PeerCred`]) and checked against
//! `register.allowed_uids`/`allowed_gids` exactly as on the native socket.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{
    ApiError,
    json::rfc3339_ms,
    lease_table::{Lease, LeaseError},
    leases::{Grant, GrantError, LeaseKeeper, Renew, Revoke},
};
use crate::{
    connection::{ClientShared, auth::Transport},
    supervisor::RegisterError,
    uri,
};

/// The credentials of the process at the other end of an API socket
/// connection.
#[derive(Debug, Clone, Copy)]
pub struct PeerCred {
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its pid, when the kernel says.
    pub pid: Option<i32>,
}

/// What the registration handlers need besides the read API.
#[derive(Clone)]
pub struct Registrar {
    /// The leases.
    pub keeper: Addr<LeaseKeeper>,
    /// Who may register, and the limits on URIs.
    pub shared: Arc<ClientShared>,
    /// `http.max_lease_ttl`.
    pub max_ttl: Duration,
}

/// The body of `PUT /v1/services`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    uri: String,
    #[serde(default)]
    attrs: BTreeMap<String, String>,
    ttl: String,
}

fn caller(req: &HttpRequest) -> Result<PeerCred, ApiError> {
    req.conn_data::<PeerCred>()
        .copied()
        .ok_or_else(|| ApiError::NotAllowed("the caller's credentials are unknown".into()))
}

fn lease_json(lease: &Lease) -> serde_json::Value {
    let ttl_ms = u64::try_from(lease.ttl.as_millis()).unwrap_or(u64::MAX);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let left = lease
        .expires
        .saturating_duration_since(std::time::Instant::now());
    let expires_ms = now_ms.saturating_add(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
    json!({
        "lease": lease.id,
        "uri": lease.uri,
        "ttl": humantime::format_duration(lease.ttl).to_string(),
        "ttl_ms": ttl_ms,
        "expires_ms": expires_ms,
        "expires": rfc3339_ms(expires_ms),
    })
}

fn lease_error(e: LeaseError) -> ApiError {
    match e {
        LeaseError::Unknown(_) => ApiError::NoLease(e.to_string()),
        LeaseError::NotOwner { .. } => ApiError::NotOwner(e.to_string()),
        LeaseError::Full(_) => ApiError::TooManyLeases(e.to_string()),
    }
}

/// `PUT /v1/services`.
pub async fn register(
    req: HttpRequest,
    registrar: web::Data<Registrar>,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    let cred = caller(&req)?;
    let body = body.into_inner();
    let transport = Transport::Unix {
        uid: cred.uid,
        gid: cred.gid,
        pid: cred.pid,
    };
    let shared = &registrar.shared;
    let allowed = match shared.policy.read() {
        Ok(policy) => policy.check(&transport),
        Err(poisoned) => poisoned.into_inner().check(&transport),
    };
    if let Err(refusal) = allowed {
        shared.stats.register_refusal(refusal.reason());
        return Err(ApiError::NotAllowed(format!(
            "{refusal} (register.allowed_uids and register.allowed_gids name who may register)"
        )));
    }
    uri::validate_uri(&body.uri, shared.limits.max_uri_bytes)
        .map_err(|e| ApiError::BadRequest(format!("uri: {e}")))?;
    uri::validate_attrs(&body.attrs).map_err(|e| ApiError::BadRequest(format!("attrs: {e}")))?;
    let ttl = humantime::parse_duration(&body.ttl).map_err(|e| {
        ApiError::BadRequest(format!(
            "ttl: {:?} is not a duration ({e}); e.g. \"30s\", \"5m\"",
            body.ttl
        ))
    })?;
    if ttl < Duration::from_secs(1) || ttl > registrar.max_ttl {
        return Err(ApiError::BadRequest(format!(
            "ttl: must be between 1s and {} (http.max_lease_ttl)",
            humantime::format_duration(registrar.max_ttl)
        )));
    }
    let granted = registrar
        .keeper
        .send(Grant {
            uri: body.uri,
            attrs: body.attrs,
            ttl,
            uid: cred.uid,
        })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    match granted {
        Ok(lease) => Ok(HttpResponse::Created().json(lease_json(&lease))),
        Err(GrantError::Lease(e)) => Err(lease_error(e)),
        Err(GrantError::Register(e @ RegisterError::Conflict { .. })) => {
            Err(ApiError::Conflict(e.to_string()))
        }
        Err(GrantError::Register(e)) => Err(ApiError::BadRequest(e.to_string())),
        Err(GrantError::Stopping) => Err(ApiError::Unavailable("the node is stopping".into())),
    }
}

/// `PUT /v1/leases/{id}`.
pub async fn renew(
    req: HttpRequest,
    registrar: web::Data<Registrar>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cred = caller(&req)?;
    let renewed = registrar
        .keeper
        .send(Renew {
            id: id.into_inner(),
            uid: cred.uid,
        })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let lease = renewed.map_err(lease_error)?;
    Ok(HttpResponse::Ok().json(lease_json(&lease)))
}

/// `DELETE /v1/leases/{id}`.
pub async fn revoke(
    req: HttpRequest,
    registrar: web::Data<Registrar>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cred = caller(&req)?;
    let revoked = registrar
        .keeper
        .send(Revoke {
            id: id.into_inner(),
            uid: cred.uid,
        })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let lease = revoked.map_err(lease_error)?;
    Ok(HttpResponse::Ok().json(json!({ "revoked": lease.id, "uri": lease.uri })))
}
