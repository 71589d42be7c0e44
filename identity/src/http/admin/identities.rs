//! `/admin/identities`: list (keyset pages, `credentials_identifier`), create (with a plain
//! `password` or an imported `hashed_password` in bcrypt/argon2/pbkdf2 PHC form), get (with
//! `include_credential`), update (PUT), JSON Patch, delete.

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{LegacyPage, Page, path_id};
use crate::clock::now_ms;
use crate::http::error::ApiError;
use crate::identity::{admin_identity_json, new_identity, refresh_addresses};
use crate::password::{Password, validate_import};
use crate::schema::normalize_identifier;
use crate::state::AppState;
use crate::store::{CredentialRecord, IdentityRecord, PasswordUpdate};

/// What a create or update body asks for, validated.
struct IdentityInput {
    schema_id: String,
    traits: Value,
    state: String,
    metadata_public: Option<Value>,
    metadata_admin: Option<Value>,
    external_id: Option<String>,
    password_config: Option<Value>,
}

fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Unable to decode JSON body: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        ))
    }
}

fn optional_object(body: &Value, key: &str) -> Option<Value> {
    body.get(key).filter(|v| !v.is_null()).cloned()
}

async fn parse_input(
    state: &AppState,
    body: &Value,
    require_state: bool,
) -> Result<IdentityInput, ApiError> {
    let schema_id = match body.get("schema_id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None if require_state => {
            return Err(ApiError::bad_request("schema_id is required"));
        }
        None => state.schemas.load().default_id().to_owned(),
    };
    let schema = state.schemas.load().get(&schema_id).ok_or_else(|| {
        ApiError::bad_request(format!("Identity schema `{schema_id}` does not exist."))
    })?;
    let traits = body
        .get("traits")
        .filter(|t| t.is_object())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("traits must be a JSON object"))?;
    let errors = schema.validate(&traits);
    if !errors.is_empty() {
        let reasons: Vec<String> = errors
            .iter()
            .map(|e| match &e.node {
                Some(node) => format!("{node}: {}", e.message.text),
                None => e.message.text.clone(),
            })
            .collect();
        return Err(ApiError::bad_request(reasons.join("; ")));
    }
    let state_value = match body.get("state").and_then(Value::as_str) {
        Some(s @ ("active" | "inactive")) => s.to_owned(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "state `{other}` is not active or inactive"
            )));
        }
        None if require_state => return Err(ApiError::bad_request("state is required")),
        None => "active".to_owned(),
    };
    let password = body.pointer("/credentials/password/config");
    let password_config = match password {
        None | Some(Value::Null) => None,
        Some(config) => {
            if let Some(hashed) = config.get("hashed_password").and_then(Value::as_str) {
                validate_import(hashed).map_err(ApiError::bad_request)?;
                Some(json!({ "hashed_password": hashed }))
            } else if let Some(plain) = config.get("password").and_then(Value::as_str) {
                let hashed = state
                    .hasher
                    .hash(&Password::new(plain.to_owned()))
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "password hashing failed");
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR)
                    })?;
                Some(json!({ "hashed_password": hashed }))
            } else {
                return Err(ApiError::bad_request(
                    "credentials.password.config needs password or hashed_password",
                ));
            }
        }
    };
    Ok(IdentityInput {
        schema_id,
        traits,
        state: state_value,
        metadata_public: optional_object(body, "metadata_public"),
        metadata_admin: optional_object(body, "metadata_admin"),
        external_id: body
            .get("external_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        password_config,
    })
}

fn include_credential(raw_query: Option<&str>) -> Vec<String> {
    url::form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "include_credential" || k == "include_credential[]")
        .map(|(_, v)| v.into_owned())
        .collect()
}

async fn render(
    state: &AppState,
    identity: &IdentityRecord,
    include: &[String],
) -> Result<Value, ApiError> {
    let credentials = state.store.credentials(identity.id).await?;
    Ok(admin_identity_json(
        identity,
        &credentials,
        include,
        &state.settings.public_base,
    ))
}

/// `GET /admin/identities`: keyset pages (`page_size`, `page_token`) or Kratos' deprecated
/// `page`/`per_page` (with `X-Total-Count`); credentials of the whole page in one query.
pub async fn list(State(state): State<AppState>, Query(query): Query<Value>) -> Response {
    let legacy = match LegacyPage::from_query(&query) {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let page = Page::from_query(&query);
    let identifier = query
        .get("credentials_identifier")
        .and_then(Value::as_str)
        .map(normalize_identifier);
    let result = async {
        let (after, offset, limit) = match legacy {
            Some(l) => (None, l.offset(), l.per_page),
            None => (page.after, 0, page.size),
        };
        let identities = state
            .store
            .list_identities(after, offset, limit, identifier.as_deref())
            .await?;
        let ids: Vec<_> = identities.iter().map(|i| i.id).collect();
        let mut credentials = state.store.credentials_of(&ids).await?;
        let body: Vec<Value> = identities
            .iter()
            .map(|identity| {
                let creds = credentials.remove(&identity.id).unwrap_or_default();
                admin_identity_json(identity, &creds, &[], &state.settings.public_base)
            })
            .collect();
        // With an identifier filter the total is what matched, as Kratos counts it.
        let total = match (legacy, identifier.is_some()) {
            (Some(_), false) => Some(state.store.count_identities().await?),
            (Some(_), true) => Some(identities.len() as i64),
            (None, _) => None,
        };
        Ok::<_, ApiError>((identities, body, total))
    }
    .await;
    let (identities, body, total) = match result {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut response = axum::Json(body).into_response();
    let base = format!("{}/admin/identities", state.settings.admin_base);
    match (legacy, total) {
        (Some(legacy), Some(total)) => legacy.headers(&mut response, &base, total),
        _ => page.link(
            &mut response,
            &base,
            identities.last().map(|i| i.id),
            identities.len(),
        ),
    }
    response
}

/// `POST /admin/identities`.
pub async fn create(State(state): State<AppState>, body: Bytes) -> Response {
    let result = async {
        let body = parse_json_body(&body)?;
        let input = parse_input(&state, &body, false).await?;
        let schema = state
            .schemas
            .load()
            .get(&input.schema_id)
            .ok_or_else(|| ApiError::bad_request("unknown schema"))?;
        let now = now_ms();
        let mut identity = new_identity(&schema, input.traits, now);
        identity.state = input.state;
        identity.metadata_public = input.metadata_public;
        identity.metadata_admin = input.metadata_admin;
        identity.external_id = input.external_id;
        let identifiers = schema.password_identifiers(&identity.traits);
        let credentials: Vec<CredentialRecord> = input
            .password_config
            .map(|config| CredentialRecord {
                kind: "password".to_owned(),
                config,
                identifiers,
                created_at: now,
                updated_at: now,
            })
            .into_iter()
            .collect();
        state.store.insert_identity(&identity, &credentials).await?;
        tracing::info!(identity = %identity.id, "identity created by admin");
        render(&state, &identity, &[])
            .await
            .map(|v| (identity.id, v))
    }
    .await;
    match result {
        Ok((id, body)) => {
            let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
            let location = format!("{}/admin/identities/{id}", state.settings.admin_base);
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn load(state: &AppState, raw_id: &str) -> Result<IdentityRecord, ApiError> {
    let id = path_id(raw_id)?;
    state
        .store
        .identity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("Unable to locate the resource"))
}

/// `GET /admin/identities/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = async {
        let identity = load(&state, &id).await?;
        render(&state, &identity, &include_credential(raw.as_deref())).await
    }
    .await;
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn apply_update(
    state: &AppState,
    mut identity: IdentityRecord,
    body: &Value,
) -> Result<Value, ApiError> {
    let input = parse_input(state, body, true).await?;
    let schema = state
        .schemas
        .load()
        .get(&input.schema_id)
        .ok_or_else(|| ApiError::bad_request("unknown schema"))?;
    let now = now_ms();
    if identity.state != input.state {
        identity.state_changed_at = now;
    }
    identity.schema_id = input.schema_id;
    identity.traits = input.traits;
    identity.state = input.state;
    identity.metadata_public = input.metadata_public;
    identity.metadata_admin = input.metadata_admin;
    if input.external_id.is_some() {
        identity.external_id = input.external_id;
    }
    identity.updated_at = now;
    refresh_addresses(&schema, &mut identity, now);
    let update = PasswordUpdate {
        identifiers: schema.password_identifiers(&identity.traits),
        config: input.password_config,
    };
    if !state.store.update_identity(&identity, &update).await? {
        return Err(ApiError::not_found("Unable to locate the resource"));
    }
    render(state, &identity, &[]).await
}

/// `PUT /admin/identities/{id}`.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let identity = load(&state, &id).await?;
        let body = parse_json_body(&body)?;
        apply_update(&state, identity, &body).await
    }
    .await;
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Paths a JSON Patch may not touch.
fn forbidden_patch_path(path: &str) -> bool {
    [
        "/id",
        "/credentials",
        "/state_changed_at",
        "/created_at",
        "/updated_at",
        "/schema_url",
    ]
    .iter()
    .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// `PATCH /admin/identities/{id}` with an RFC 6902 JSON Patch.
pub async fn patch(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let result = async {
        let identity = load(&state, &id).await?;
        let patch: json_patch::Patch = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("Unable to decode JSON Patch: {e}")))?;
        for op in &patch.0 {
            let path = match op {
                json_patch::PatchOperation::Add(o) => o.path.to_string(),
                json_patch::PatchOperation::Remove(o) => o.path.to_string(),
                json_patch::PatchOperation::Replace(o) => o.path.to_string(),
                json_patch::PatchOperation::Move(o) => o.path.to_string(),
                json_patch::PatchOperation::Copy(o) => o.path.to_string(),
                json_patch::PatchOperation::Test(o) => o.path.to_string(),
            };
            if forbidden_patch_path(&path) {
                return Err(ApiError::bad_request(format!(
                    "patch path {path} is not allowed"
                )));
            }
        }
        let mut doc = json!({
            "schema_id": identity.schema_id,
            "traits": identity.traits,
            "state": identity.state,
            "metadata_public": identity.metadata_public,
            "metadata_admin": identity.metadata_admin,
            "external_id": identity.external_id,
        });
        json_patch::patch(&mut doc, &patch)
            .map_err(|e| ApiError::bad_request(format!("Unable to apply JSON Patch: {e}")))?;
        apply_update(&state, identity, &doc).await
    }
    .await;
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /admin/identities/{id}`.
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let result = async {
        let id = path_id(&id)?;
        if state.store.delete_identity(id).await? {
            tracing::info!(identity = %id, "identity deleted by admin");
            Ok(())
        } else {
            Err(ApiError::not_found("Unable to locate the resource"))
        }
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
