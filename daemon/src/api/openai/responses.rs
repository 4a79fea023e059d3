//! `POST /v1/responses`, `GET /v1/responses/{id}` and its `input_items` (OpenResponses). A
//! response with `store` (the default) is kept with its input and output items, and starts a
//! session of its own that every response continuing it with `previous_response_id` runs on;
//! `store: false` runs without history and keeps nothing. An `item_reference` in the input
//! names an item of a stored response, which takes its place.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use super::event_stream::{Frames, SseBody, Written};
use super::response_objects::{new_id, Call, Ending, ResponseBuilder, ResponseInit};
use super::run_outcome::{self, now_secs, Finished, Step};
use super::wire::{self, InputItem, Item, Parsed, ResponsesRequest};
use super::{convert, with_run_headers};
use crate::api::body::read_body;
use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;
use crate::core::store::StoreError;
use crate::runtime::agent::{FinishReason, History, Role, RunEvent, RunOrigin, RunRequest};

pub async fn create(State(gw): State<Arc<Gateway>>, _headers: HeaderMap, body: Body) -> Response {
    respond(gw, body).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn get(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match load(&gw, &id).await {
        Ok(Some((_, body))) => Json(body).into_response(),
        Ok(None) => not_found(&id).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/responses/{id}`: forgets the stored object (the chain's session stays).
pub async fn delete(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let key = id.clone();
    match with_history(&gw, "change stored responses", move |h| h.delete_response(&key)).await {
        Ok(true) => Json(serde_json::json!({ "id": id, "object": "response.deleted", "deleted": true }))
            .into_response(),
        Ok(false) => not_found(&id).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/responses/{id}/input_items`: the items the response ran on, references resolved.
#[derive(Debug, serde::Deserialize)]
pub struct InputItemsQuery {
    after: Option<String>,
    limit: Option<usize>,
    order: Option<String>,
}

/// Items a page holds by default and at most.
const INPUT_ITEMS_PAGE: usize = 20;
const INPUT_ITEMS_PAGE_MAX: usize = 100;

pub async fn input_items(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    Query(q): Query<InputItemsQuery>,
) -> Response {
    list_input_items(&gw, id, q).await.unwrap_or_else(IntoResponse::into_response)
}

async fn list_input_items(gw: &Gateway, id: String, q: InputItemsQuery) -> Result<Response, GatewayError> {
    let limit = q.limit.unwrap_or(INPUT_ITEMS_PAGE);
    if !(1..=INPUT_ITEMS_PAGE_MAX).contains(&limit) {
        return Err(GatewayError::bad_request(format!(
            "limit: {limit} is not between 1 and {INPUT_ITEMS_PAGE_MAX}"
        ))
        .with_param("limit"));
    }
    let descending = match q.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(GatewayError::bad_request(format!(
                "order: {} is not asc or desc",
                gateway_proto::quote::short(other)
            ))
            .with_param("order"))
        }
    };
    let key = id.clone();
    let stored = with_history(gw, "read stored responses", move |h| h.response_input_items(&key)).await?;
    let mut items: Vec<Value> =
        stored.ok_or_else(|| not_found(&id))?.iter().filter_map(|b| serde_json::from_str(b).ok()).collect();
    if descending {
        items.reverse();
    }
    if let Some(after) = &q.after {
        let at = items.iter().position(|i| i["id"].as_str() == Some(after.as_str())).ok_or_else(|| {
            GatewayError::bad_request(format!(
                "after: {} is not an input item of {}",
                gateway_proto::quote::short(after),
                gateway_proto::quote::short(&id)
            ))
            .with_param("after")
        })?;
        items.drain(..=at);
    }
    let has_more = items.len() > limit;
    items.truncate(limit);
    let first_id = items.first().map(|i| i["id"].clone()).unwrap_or(Value::Null);
    let last_id = items.last().map(|i| i["id"].clone()).unwrap_or(Value::Null);
    Ok(Json(serde_json::json!({
        "object": "list", "data": items, "first_id": first_id, "last_id": last_id, "has_more": has_more,
    }))
    .into_response())
}

/// The input as it runs: each `item_reference` replaced by the stored item it names, and an id
/// for each item that came without one.
async fn resolve_input(gw: &Gateway, items: Vec<Item>) -> Result<Vec<Item>, GatewayError> {
    let mut resolved = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let InputItem::ItemReference { id } = &item.item else {
            resolved.push(item.with_id(new_id));
            continue;
        };
        let key = id.clone();
        let stored = with_history(gw, "read stored responses", move |h| h.response_item(&key)).await?;
        let json: Value = stored.and_then(|body| serde_json::from_str(&body).ok()).ok_or_else(|| {
            GatewayError::bad_request(format!(
                "input[{index}]: item_reference {}: no stored response has an item with this id (only items of responses this gateway stored can be referenced; responses created with \"store\": false are not kept)",
                gateway_proto::quote::short(id)
            ))
            .with_param("input")
        })?;
        resolved.push(Item::parse(index, json)?);
    }
    Ok(resolved)
}

/// Runs a store call off the async workers. A failure is logged in full; the caller learns
/// that the gateway cannot `doing` right now.
async fn with_history<T: Send + 'static>(
    gw: &Gateway,
    doing: &'static str,
    f: impl FnOnce(&History) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, GatewayError> {
    gw.agents.with_history(f).await.map_err(|e| GatewayError::store_failed(doing, e))
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::not_found(
        "response_not_found",
        format!(
            "no stored response {} (responses created with \"store\": false are not kept)",
            gateway_proto::quote::short(id)
        ),
    )
}

/// A stored response: its session key and the Response object.
async fn load(gw: &Gateway, id: &str) -> Result<Option<(Option<String>, Value)>, GatewayError> {
    let id = id.to_owned();
    let row = with_history(gw, "read stored responses", move |h| h.response(&id)).await?;
    Ok(row.map(|(key, body)| (key, serde_json::from_str(&body).unwrap_or(Value::Null))))
}

/// A chain's messages so far (the newest the default agent keeps in its context).
async fn chain_history(gw: &Gateway, key: &str) -> Result<Vec<crate::runtime::agent::Message>, GatewayError> {
    let config = gw.active_owned();
    let limit = config
        .config
        .agents
        .get(gateway_config::DEFAULT_AGENT)
        .map_or_else(|| gateway_config::Agent::default().history_limit.get(), |a| a.history_limit.get());
    let key = key.to_owned();
    let stored =
        with_history(gw, "read stored conversations", move |h| h.messages(&key, limit as usize, None))
            .await?;
    Ok(stored.into_iter().map(|m| m.message).collect())
}

/// Where a stored response is kept: the history, its id, its session and its input items.
#[derive(Clone)]
struct Keep {
    history: History,
    id: String,
    session_key: Option<String>,
    input: Arc<Vec<(String, String)>>,
}

/// Items as stored: (id, JSON).
fn keyed(items: &[Value]) -> Vec<(String, String)> {
    items.iter().map(|i| (i["id"].as_str().unwrap_or_default().to_owned(), i.to_string())).collect()
}

impl Keep {
    /// Saves the response as it stands, with its items; a failure is logged, not fatal to the
    /// answer.
    async fn save(&self, body: Value) {
        let keep = self.clone();
        let output = keyed(body["output"].as_array().map_or(&[][..], Vec::as_slice));
        let stored = crate::core::store::off_workers(keep.history.clone(), move |h| {
            h.put_response(&keep.id, keep.session_key.as_deref(), &body.to_string(), &keep.input, &output)
        })
        .await;
        if let Err(e) = stored {
            tracing::error!(error = %e, "cannot store a response");
        }
    }
}

async fn respond(gw: Arc<Gateway>, body: Body) -> Result<Response, GatewayError> {
    let limit = gw.active().config.gateway.http.max_body_bytes.get() as usize;
    let bytes = read_body(body, limit).await?;
    let Parsed { request: r, ignored } = wire::parse::<ResponsesRequest>(&bytes, wire::RESPONSES_HONOURED)?;
    let items = resolve_input(&gw, wire::input_items(&r.input)?).await?;
    // System and developer messages join the instructions: the engine takes them there.
    let (system, input): (Vec<_>, Vec<_>) = convert::input_messages(items.iter().map(|i| &i.item))?
        .into_iter()
        .partition(|m| m.role == Role::System);
    let instructions = r
        .instructions
        .iter()
        .cloned()
        .chain(system.into_iter().map(|m| m.content))
        .reduce(|a, b| format!("{a}\n\n{b}"));
    if input.is_empty() {
        return Err(GatewayError::bad_request(
            "input: send a message besides the system and developer ones (they join the instructions)",
        )
        .with_param("input"));
    }
    run_outcome::check_input_chars(&gw, &input, instructions.as_deref())?;
    let tools = convert::responses_tools(&r.tools)?;
    let id = new_id("resp");
    // The session this continues: the one the request names (metadata.session_id, then
    // conversation), else the chain's of previous_response_id, if any.
    let chain = match &r.previous_response_id {
        Some(prev) => {
            let (key, _) =
                load(&gw, prev).await?.ok_or_else(|| not_found(prev).with_param("previous_response_id"))?;
            Some(key.unwrap_or_else(|| format!("resp:{prev}")))
        }
        None => None,
    };
    let chain = match r.named_session() {
        Some((param, key)) => {
            crate::runtime::agent::history::check_key("session key", key)
                .map_err(|e| GatewayError::bad_request(format!("{param}: {e}")).with_param(param))?;
            Some(key.to_owned())
        }
        None => chain,
    };
    let (session_key, input) = match (chain, r.store) {
        (Some(key), true) => (Some(key), input),
        // Continued but not kept: the chain so far and the new input, as one run storing nothing.
        (Some(key), false) => (None, [chain_history(&gw, &key).await?, input].concat()),
        (None, true) => (Some(format!("resp:{id}")), input),
        (None, false) => (None, input),
    };
    let tools_off = r.tool_choice.as_ref().is_some_and(wire::ToolChoice::is_none);
    let req = RunRequest {
        session_key: session_key.clone(),
        model: r.model.clone(),
        input,
        instructions: instructions.clone(),
        client_tools: if tools_off { Vec::new() } else { tools.clone() },
        max_output_tokens: r.max_output_tokens,
        temperature: r.temperature,
        origin: RunOrigin::Http,
        ..Default::default()
    };
    let mut handle = run_outcome::start(&gw, req).await?;
    let run_id = handle.run_id.clone();
    let mut builder = ResponseBuilder::new(ResponseInit {
        id: id.clone(),
        created_at: now_secs(),
        model: handle.model.clone(),
        previous_response_id: r.previous_response_id.clone(),
        instructions: r.instructions.clone(),
        tools: convert::responses_tools_json(&tools),
        tool_choice: r.tool_choice.as_ref().map(|c| match c {
            wire::ToolChoice::Mode(m) => Value::String(m.clone()),
            wire::ToolChoice::Named(v) => v.clone(),
        }),
        parallel_tool_calls: r.parallel_tool_calls,
        temperature: r.temperature,
        max_output_tokens: r.max_output_tokens,
        store: r.store,
        metadata: r.metadata.clone().unwrap_or_else(Map::new),
        user: r.user.clone(),
    });
    let keep = r.store.then(|| Keep {
        history: gw.agents.history().clone(),
        id,
        session_key: session_key.clone(),
        input: Arc::new(keyed(&items.iter().map(|i| i.json.clone()).collect::<Vec<_>>())),
    });
    // A streaming client knows the id from `response.created` on, so the response is
    // retrievable (and continuable) from then; a non-streamed one learns it at the end.
    if let Some(keep) = keep.as_ref().filter(|_| r.stream) {
        keep.save(builder.object()).await;
    }
    let mut first = Frames::default();
    builder.start(&mut first);

    if !r.stream {
        let outcome = run_outcome::finish(&mut handle).await;
        let mut sink = Frames::default();
        let error = end(&mut builder, outcome, &mut sink);
        if let Some(keep) = &keep {
            keep.save(builder.object()).await;
        }
        if let Some(e) = error {
            return Err(e);
        }
        let response = super::respond_json(builder.object(), &ignored);
        return Ok(with_run_headers(response, &run_id, session_key.as_deref(), &ignored));
    }

    // A task drives the stream so the final object is stored before `response.completed`
    // goes out; the client going away closes the channel, and the task drops the run (which
    // aborts it) and stores the response as failed.
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
    tokio::spawn(async move {
        let mut handle = handle;
        loop {
            let event = tokio::select! {
                event = handle.events.recv() => event,
                _ = tx.closed() => {
                    drop(handle);
                    end(&mut builder, Err(client_gone()), &mut Frames::default());
                    if let Some(keep) = &keep {
                        keep.save(builder.object()).await;
                    }
                    return;
                }
            };
            let mut out = Frames::default();
            let outcome = match run_outcome::step(event) {
                Step::Going(RunEvent::Delta { text }) => {
                    builder.text_delta(&text, &mut out);
                    None
                }
                Step::Going(RunEvent::ToolStart { .. }) => {
                    builder.end_message(&mut out);
                    None
                }
                Step::Going(_) => None,
                Step::Ended(outcome) => Some(outcome),
            };
            if let Some(outcome) = outcome {
                end(&mut builder, outcome, &mut out);
                if let Some(keep) = &keep {
                    keep.save(builder.object()).await;
                }
                let _ = tx.send(out.into_string()).await;
                return;
            }
            // A failed send means the client left: the next turn of the loop sees it.
            let _ = tx.send(out.into_string()).await;
        }
    });
    let response = SseBody::new(rx, Written, first).into_response();
    Ok(with_run_headers(response, &run_id, session_key.as_deref(), &ignored))
}

/// Stored only, never sent: the status is the customary "client closed request".
fn client_gone() -> GatewayError {
    GatewayError::server(
        axum::http::StatusCode::from_u16(499).unwrap_or(axum::http::StatusCode::BAD_REQUEST),
        "client_disconnected",
        "the client went away before the response finished; the run was aborted",
    )
}

/// Ends the response with the run's outcome; returns the error to answer with, if it failed.
fn end(
    builder: &mut ResponseBuilder,
    outcome: Result<Finished, GatewayError>,
    out: &mut Frames,
) -> Option<GatewayError> {
    let now = now_secs();
    match outcome {
        Ok(done) => {
            let calls: Vec<Call> = done
                .message
                .tool_calls
                .iter()
                .map(|c| Call { call_id: c.id.clone(), name: c.name.clone(), arguments: c.arguments.clone() })
                .collect();
            let ending = if done.finish_reason == FinishReason::Length {
                Ending::Incomplete
            } else {
                Ending::Completed
            };
            let usage = Some((done.usage.input_tokens, done.usage.output_tokens));
            builder.finish(Some(&done.message.content), &calls, usage, ending, now, out);
            None
        }
        Err(e) => {
            let ending = Ending::Failed { code: e.code.to_owned(), message: e.message.clone() };
            builder.finish(None, &[], None, ending, now, out);
            Some(e)
        }
    }
}
