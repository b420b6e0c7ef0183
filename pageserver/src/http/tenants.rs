//! The tenant routes: create, list, info, attach, detach, reset.

use super::*;
use crate::http::answers::TenantInfo;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    tenant_id: String,
}

pub(super) async fn create_tenant(
    State(s): State<Arc<PageServer>>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateTenant = json_body(&body)?;
    let id = tenant_id(&req.tenant_id)?;
    let tenant = s
        .tenants
        .create_tenant(id)
        .instrument(tracing::info_span!("create_tenant", tenant_id = %id))
        .await?;
    Ok((StatusCode::CREATED, Json(TenantInfo::from(tenant.status()))).into_response())
}

pub(super) async fn list_tenants(State(s): State<Arc<PageServer>>) -> Response {
    Json(
        s.tenants
            .list()
            .iter()
            .map(|t| TenantInfo::from(t.status()))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

pub(super) async fn tenant_info(
    State(s): State<Arc<PageServer>>,
    Path(t): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(TenantInfo::from(s.tenants.get(tenant_id(&t)?)?.status())).into_response())
}

pub(super) async fn attach_tenant(
    State(s): State<Arc<PageServer>>,
    Path(t): Path<String>,
) -> ApiResult<Response> {
    let id = tenant_id(&t)?;
    let tenant = s
        .tenants
        .attach_tenant(id)
        .instrument(tracing::info_span!("attach", tenant_id = %id))
        .await?;
    Ok(Json(TenantInfo::from(tenant.status())).into_response())
}

pub(super) async fn detach_tenant(
    State(s): State<Arc<PageServer>>,
    Path(t): Path<String>,
    admitted: Option<axum::Extension<Arc<crate::shutdown::Admitted>>>,
) -> ApiResult<Response> {
    let id = tenant_id(&t)?;
    // A task of its own, so that a client giving up cannot leave the tenant half-detached;
    // it holds the request's admission, so a shutdown waits for it.
    let tenants = s.tenants.clone();
    let task = tokio::spawn(
        async move {
            let _admitted = admitted;
            tenants.detach_tenant(id).await
        }
        .instrument(tracing::info_span!("detach", tenant_id = %id)),
    );
    task.await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("detach task failed: {e}")))??;
    Ok(Json(serde_json::json!({})).into_response())
}

pub(super) async fn reset_tenant(
    State(s): State<Arc<PageServer>>,
    Path(t): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    admitted: Option<axum::Extension<Arc<crate::shutdown::Admitted>>>,
) -> ApiResult<Response> {
    let id = tenant_id(&t)?;
    let drop_cache = match q.get("drop_cache").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "drop_cache={other:?}: expected true or false"
            )));
        }
    };
    // A task of its own, so that a client giving up cannot leave the tenant stopped; it
    // holds the request's admission, so a shutdown waits for it.
    let tenants = s.tenants.clone();
    let task = tokio::spawn(
        async move {
            let _admitted = admitted;
            tenants.reset_tenant(id, drop_cache).await
        }
        .instrument(tracing::info_span!("reset", tenant_id = %id)),
    );
    let tenant = task
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("reset task failed: {e}")))??;
    Ok(Json(TenantInfo::from(tenant.status())).into_response())
}
