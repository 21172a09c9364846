//! The limits of every GraphQL operation, as an extension of the one schema: whether it
//! came over HTTP or a WebSocket, whether it asks for the schema (`__schema`, `__type`) or
//! for data, an operation meets the same limits.
//!
//! - Shape, once parsed and before async-graphql's own walks (its recursion-depth check,
//!   validation): aliased fields and fields in all, fragments expanded (counted with
//!   memoisation, so fragments spreading fragments cannot make the count, or the walks
//!   after it, explode).
//! - Depth and complexity: the schema's own limits (`limit_depth`, `limit_complexity`),
//!   set on the schema; a lake field costs [`super::LAKE_QUERY_COST`].
//! - The answer: JSON larger than `max_response_bytes` is replaced by an error (measured
//!   without building the text); every error leaves with `extensions.code`.
//! - Over a WebSocket: each operation counts against its address's request rate (an HTTP
//!   request is counted by [`super::http`]) and takes a place among the connection's
//!   operations until it ends.
//! - Root fields reading the lake outside the sensor reader (the open datasets) take
//!   their turn at the lake gate.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest, NextResolve,
    NextSubscribe, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, Response, ServerError, ServerResult, Value};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::Guards;
use super::ws::WsSession;
use crate::options::Limits;
use crate::rate_limit::address_key;
use crate::schema::codes::{ClientAddr, Code};

/// Root fields that read the lake themselves (not through the sensor reader, which takes
/// its own turn): they take a turn at the gate while they resolve.
const LAKE_ROOT_FIELDS: [&str; 2] = ["datasets", "dataset"];

/// The extension: one per schema, its state shared with the other doors.
pub struct Shape(pub Arc<Guards>);

impl ExtensionFactory for Shape {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ShapeExtension(self.0.clone()))
    }
}

struct ShapeExtension(Arc<Guards>);

/// A request-level refusal with its code.
fn refusal(code: Code, message: impl Into<String>) -> ServerError {
    let mut e = ServerError::new(message, None);
    e.extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
    e
}

fn rate_limited(retry_after: u64, message: &str) -> ServerError {
    let mut e = refusal(
        Code::RateLimited,
        format!("{message}: retry in {retry_after} s"),
    );
    if let Some(x) = e.extensions.as_mut() {
        x.set("retryAfter", retry_after);
    }
    e
}

#[async_graphql::async_trait::async_trait]
impl Extension for ShapeExtension {
    /// Before async-graphql walks the document (its recursion-depth check follows every
    /// fragment spread without memoisation: fragments spreading fragments make that walk
    /// exponential), the document is parsed here and its shape checked; the schema then
    /// reuses this parse.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let max = self.0.limits.max_body_bytes;
        if request.query.len() > max {
            return Err(refusal(
                Code::BadUserInput,
                format!("the query is larger than {max} bytes"),
            ));
        }
        check_shape(request.parsed_query()?, &self.0.limits)?;
        next.run(ctx, request).await
    }

    /// A whole request (`Schema::execute`: the HTTP door), its refusals included; an
    /// operation over a WebSocket is a stream ([`Extension::subscribe`]).
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let response = next.run(ctx).await;
        finish(response, self.0.limits.max_response_bytes)
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_none() && LAKE_ROOT_FIELDS.contains(&info.name) {
            let pos = info.field.name.pos;
            let _turn = (self.0.lake.enter().await)
                .map_err(|_| rate_limited(1, "the hub is busy").with_pos(pos))?;
            return next.run(ctx, info).await;
        }
        next.run(ctx, info).await
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let max = self.0.limits.max_response_bytes;
        let Some(session) = ctx.data_opt::<Arc<WsSession>>() else {
            return next.run(ctx, stream).map(move |r| finish(r, max)).boxed();
        };
        let refuse = |e: ServerError| {
            futures::stream::once(async move { Response::from_errors(vec![e]) }).boxed()
        };
        if let Some(ClientAddr(ip)) = ctx.data_opt::<ClientAddr>() {
            let limit = self.0.limits.requests_per_minute_per_address;
            if let Err(wait) = self.0.requests.check(&address_key("r", *ip), limit) {
                return refuse(rate_limited(wait, "too many requests"));
            }
        }
        let Some(running) = session.start() else {
            return refuse(refusal(
                Code::RateLimited,
                format!(
                    "this connection runs {} operations already: complete one first",
                    self.0.limits.max_subscriptions_per_connection
                ),
            ));
        };
        next.run(ctx, stream)
            .map(move |r| {
                let _running = &running;
                finish(r, max)
            })
            .boxed()
    }
}

trait WithPos {
    fn with_pos(self, pos: async_graphql::Pos) -> Self;
}

impl WithPos for ServerError {
    fn with_pos(mut self, pos: async_graphql::Pos) -> Self {
        self.locations = vec![pos];
        self
    }
}

/// Fields and aliased fields of a selection set, fragments expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    fields: u64,
    aliases: u64,
}

impl Counts {
    fn add(self, other: Counts) -> Counts {
        Counts {
            fields: self.fields.saturating_add(other.fields),
            aliases: self.aliases.saturating_add(other.aliases),
        }
    }
}

/// Refuses an operation with more aliased fields than `max_aliases`, or more fields than
/// `max_complexity` (each costs at least 1), fragments expanded.
pub fn check_shape(document: &ExecutableDocument, limits: &Limits) -> ServerResult<()> {
    // `None` while a fragment is being counted: a cycle counts nothing here (validation
    // refuses it).
    let mut fragments: HashMap<&str, Option<Counts>> = HashMap::new();
    for (_, operation) in document.operations.iter() {
        let counts = count(document, &operation.node.selection_set.node, &mut fragments);
        if counts.aliases > limits.max_aliases as u64 {
            return Err(refusal(
                Code::BadUserInput,
                format!(
                    "the operation has {} aliased fields (fragments expanded); at most {} are allowed",
                    counts.aliases, limits.max_aliases
                ),
            ));
        }
        if counts.fields > limits.max_complexity as u64 {
            return Err(refusal(
                Code::BadUserInput,
                format!(
                    "the operation asks for {} fields (fragments expanded); at most {} are allowed",
                    counts.fields, limits.max_complexity
                ),
            ));
        }
    }
    Ok(())
}

fn count<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    fragments: &mut HashMap<&'a str, Option<Counts>>,
) -> Counts {
    let mut total = Counts::default();
    for selection in &set.items {
        let counts = match &selection.node {
            Selection::Field(f) => Counts {
                fields: 1,
                aliases: u64::from(f.node.alias.is_some()),
            }
            .add(count(document, &f.node.selection_set.node, fragments)),
            Selection::InlineFragment(i) => count(document, &i.node.selection_set.node, fragments),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                match fragments.get(name) {
                    Some(Some(c)) => *c,
                    Some(None) => Counts::default(),
                    None => match document.fragments.get(&s.node.fragment_name.node) {
                        None => Counts::default(),
                        Some(fragment) => {
                            fragments.insert(name, None);
                            let c = count(document, &fragment.node.selection_set.node, fragments);
                            fragments.insert(name, Some(c));
                            c
                        }
                    },
                }
            }
        };
        total = total.add(counts);
    }
    total
}

/// Counts bytes, failing past a maximum.
struct Measure {
    bytes: usize,
    max: usize,
}

impl std::io::Write for Measure {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len();
        if self.bytes > self.max {
            return Err(std::io::Error::other("too large"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An answer as it leaves: replaced by an error when its JSON would be larger than
/// `max_bytes`; every error with its code.
pub fn finish(mut response: Response, max_bytes: usize) -> Response {
    let mut measure = Measure {
        bytes: 0,
        max: max_bytes,
    };
    if serde_json::to_writer(&mut measure, &response.data).is_err() {
        tracing::warn!(max_bytes, "a GraphQL answer too large was refused");
        response = Response::from_errors(vec![refusal(
            Code::BadUserInput,
            format!(
                "the answer would be larger than {max_bytes} bytes: ask for fewer fields or smaller pages"
            ),
        )]);
    }
    add_codes(&mut response.errors);
    response
}

/// Every error answered carries `extensions.code`: the hub's being busy is
/// `RATE_LIMITED`; other request-level errors (syntax, validation, limits) are the
/// client's; field errors without a code are ours (and logged).
pub fn add_codes(errors: &mut [ServerError]) {
    for e in errors {
        let has_code = e
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if has_code {
            continue;
        }
        if let Some(crate::Error::Busy(what)) = e.source::<crate::Error>() {
            e.message = format!("the hub is busy ({what}): retry in 1 s");
            let x = e.extensions.get_or_insert_with(Default::default);
            x.set("code", Code::RateLimited.as_str());
            x.set("retryAfter", 1);
            continue;
        }
        let code = if e.path.is_empty() {
            Code::BadUserInput
        } else {
            tracing::error!(error = %e.message, path = ?e.path, "request failed");
            Code::Internal
        };
        e.extensions
            .get_or_insert_with(Default::default)
            .set("code", code.as_str());
    }
}

#[cfg(test)]
mod tests;
