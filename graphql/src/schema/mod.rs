//! The GraphQL schema: queries, mutations and subscriptions over the citizens' view, the
//! restricted contact store and the lake.
//!
//! Conventions clients rely on: camelCase fields, UPPER_SNAKE_CASE enum values, ids as
//! `ID!`; every mutation takes `input: <Name>Input!` (or `id: ID!` plus arguments) and
//! returns a `<Name>Payload!`; lists are Relay connections (`first` ≤ 100); every error
//! carries `extensions.code` ([`Code`]).
//!
//! Mutations hold no rules of their own: each builds a [`crate::commands::Command`] and
//! maps what it applied (or why it was refused) to its payload (or error code).

pub mod codes;
pub mod devices;
mod mutation;
pub mod open_data;
mod query;
pub mod rounds;
pub mod sensors;
mod subscription;
pub mod types;

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ErrorExtensions, OutputType, Schema};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ApiState;
use crate::auth::Caller;
use crate::commands::CommandError;
pub use codes::{ClientAddr, Code};
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

/// The hub's schema type.
pub type ApiSchema = Schema<Query, Mutation, Subscription>;

/// An error with its code.
pub fn error(code: Code, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, e| e.set("code", code.as_str()))
}

/// Builds the schema with its own limits' state (tests; the router shares its
/// [`crate::limits::Guards`] with the other doors through [`build_with`]).
pub fn build(state: Arc<ApiState>) -> ApiSchema {
    let gate = state.sensors.gate().clone();
    let guards = crate::limits::Guards::new(&state.options.limits, gate);
    build_with(state, Arc::new(guards))
}

/// Builds the one schema every GraphQL door serves: the same depth, complexity and shape
/// limits for every operation, introspection included ([`crate::limits::graphql`]).
pub fn build_with(state: Arc<ApiState>, guards: Arc<crate::limits::Guards>) -> ApiSchema {
    let limits = state.options.limits.clone();
    let loader =
        async_graphql::dataloader::DataLoader::new(sensors::BinLoader(state.clone()), tokio::spawn);
    Schema::build(Query, Mutation, Subscription)
        .data(state)
        .data(loader)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_directives(8)
        .extension(crate::limits::graphql::Shape(guards))
        .finish()
}

/// The SDL of the schema (committed as `graphql/schema.graphql`).
pub fn sdl() -> String {
    Schema::build(Query, Mutation, Subscription).finish().sdl()
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a Arc<ApiState> {
    ctx.data_unchecked::<Arc<ApiState>>()
}

pub(crate) fn caller<'a>(ctx: &Context<'a>) -> &'a Caller {
    static ANONYMOUS: Caller = Caller::Anonymous;
    ctx.data_opt::<Caller>().unwrap_or(&ANONYMOUS)
}

/// A command's refusal as a GraphQL error with its code. A failure of the hub keeps no
/// code here: the HTTP layer gives it `INTERNAL_SERVER_ERROR` and logs it.
pub(crate) fn command_error(e: CommandError) -> async_graphql::Error {
    let code = match &e {
        CommandError::BadInput(_) => Code::BadUserInput,
        CommandError::Unauthenticated(_) => Code::Unauthenticated,
        CommandError::Forbidden(_) => Code::Forbidden,
        CommandError::NotFound(_) => Code::NotFound,
        CommandError::RateLimited { retry_after } => return rate_limited(*retry_after),
        CommandError::Failed(_) => return async_graphql::Error::new(e.to_string()),
    };
    error(code, e.to_string())
}

pub(crate) fn rate_limited(retry_after: u64) -> async_graphql::Error {
    error(
        Code::RateLimited,
        format!("too many requests: retry in {retry_after} s"),
    )
    .extend_with(|_, e| e.set("retryAfter", retry_after))
}

/// Largest page.
pub const MAX_PAGE: usize = 100;

/// Where a page starts and how long it is, from Relay's `first` (default 20, at most
/// [`MAX_PAGE`]) and `after` (an opaque position).
pub(crate) fn page_window(
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<(usize, usize)> {
    let first = match first {
        None => 20,
        Some(n) if (0..=MAX_PAGE as i32).contains(&n) => n as usize,
        Some(n) => {
            return Err(error(
                Code::BadUserInput,
                format!("first must be between 0 and {MAX_PAGE}, got {n}"),
            ));
        }
    };
    let start = match after {
        None => 0,
        Some(c) => {
            decode_cursor(&c)
                .ok_or_else(|| error(Code::BadUserInput, format!("invalid cursor {c:?}")))?
                + 1
        }
    };
    Ok((start, first))
}

/// One page of `items` as a Relay connection; cursors are opaque positions.
pub(crate) fn paginate<T: OutputType>(
    items: Vec<T>,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<Connection<String, T>> {
    let (start, first) = page_window(first, after)?;
    let total = items.len();
    let mut connection = Connection::new(start > 0, start + first < total);
    connection.edges.extend(
        items
            .into_iter()
            .enumerate()
            .skip(start)
            .take(first)
            .map(|(i, node)| Edge::new(encode_cursor(i), node)),
    );
    Ok(connection)
}

pub(crate) fn encode_cursor(i: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("at:{i}"))
}

pub(crate) fn decode_cursor(c: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(c).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("at:")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests;
