//! Who reads the API's sensor results, and so what of them they see: the one place the
//! API decides between exact values and the public view of `vallee_schemas::public_view`.
//!
//! Every sensor read ([`crate::sensors::SensorReader`]) takes a [`Reader`], every
//! subscription filters with one, so a new query or door cannot skip the rules:
//! - people counts (footfall, dwell, site presence): exact for staff; for everyone else
//!   (anonymous, citizens, partners) small counts withheld, with the complementary rule
//!   between an hour and its 5-minute windows;
//! - vineyard parcels: a partner sees its own parcels' alerts; everyone else (staff
//!   included: partners' data is theirs) those of the parcels shared with the public, and
//!   the stations' own. Bin alerts are public.
//!
//! A partner is recognised by its token: over HTTP in `Authorization: Bearer …` (where it
//! is no citizen's or staff member's, [`identify`]), over WebSocket in the
//! `connection_init` payload.

use async_graphql::Context;
use vallee_opendata::sharing::Audience;
use vallee_schemas::public_view::parcels;
use vallee_schemas::tables::AlertKind;

use crate::ApiState;
use crate::auth::{BadToken, Caller, bearer_token, sha256_hex};
use crate::options::Partner;

/// What one request may see of sensor results. The default is the public of a hub whose
/// partners share nothing.
#[derive(Debug, Clone, Default)]
pub struct Reader {
    /// Staff: exact counts.
    exact_counts: bool,
    /// A partner's own parcels.
    own_parcels: Vec<String>,
    /// The parcels shared with the public.
    public_parcels: Vec<String>,
}

impl Reader {
    /// The public: counts withheld, shared parcels only.
    pub fn public(state: &ApiState) -> Self {
        Reader {
            exact_counts: false,
            own_parcels: Vec::new(),
            public_parcels: (state.open_data.sharing().visible_to(Audience::Public))
                .map(|(p, _)| p.to_string())
                .collect(),
        }
    }

    /// Staff: exact counts; parcels as the public sees them.
    pub fn staff(state: &ApiState) -> Self {
        Reader {
            exact_counts: true,
            ..Reader::public(state)
        }
    }

    /// Exact counts, no parcel shared (staff of a hub whose partners share nothing).
    pub fn exact() -> Self {
        Reader {
            exact_counts: true,
            ..Reader::default()
        }
    }

    /// A partner: counts withheld, its own parcels and the shared ones.
    pub fn partner(state: &ApiState, partner: &Partner) -> Self {
        Reader {
            own_parcels: partner.parcels.clone(),
            ..Reader::public(state)
        }
    }

    /// The reader of a GraphQL request or subscription.
    pub fn of(ctx: &Context<'_>) -> Self {
        // Read from the context directly (not through `schema`'s helpers): the schema
        // depends on this module, not the other way round.
        let state = ctx.data_unchecked::<std::sync::Arc<ApiState>>();
        if let Some(partner) = ctx.data_opt::<FeedPartner>() {
            return Reader::partner(state, &partner.0);
        }
        match ctx.data_opt::<Caller>() {
            Some(Caller::Staff(_)) => Reader::staff(state),
            _ => Reader::public(state),
        }
    }

    /// Whether counts are shown exactly (else the public view).
    pub fn exact_counts(&self) -> bool {
        self.exact_counts
    }

    /// Whether an alert of `kind` about `entity` reaches this reader: bin alerts always,
    /// the others (vineyards, and kinds the stage may add) by the parcels' rule.
    pub fn sees_alert(&self, kind: AlertKind, entity: &str) -> bool {
        use AlertKind::{Fill, Fire, Silent, Status};
        matches!(kind, Fill | Fire | Status | Silent)
            || parcels::visible(entity, &self.own_parcels, |p| {
                self.public_parcels.iter().any(|s| s == p)
            })
    }
}

/// The partner of a request or WebSocket connection (a bearer token on `/graphql`, the
/// `connection_init` payload's `token` over WebSocket).
#[derive(Debug, Clone)]
pub struct FeedPartner(pub Partner);

/// The partner whose token this is.
pub fn partner_of_token<'a>(state: &'a ApiState, token: &str) -> Option<&'a Partner> {
    let hash = sha256_hex(token.trim());
    state
        .options
        .partners
        .iter()
        .find(|p| p.token_sha256.eq_ignore_ascii_case(&hash))
}

/// The caller named by an `Authorization` header value, and the partner when the token is a
/// vineyard partner's (the partner is otherwise anonymous).
pub fn identify(
    state: &ApiState,
    authorization: Option<&str>,
) -> Result<(Caller, Option<FeedPartner>), BadToken> {
    match state.auth.caller(authorization) {
        Ok(caller) => Ok((caller, None)),
        Err(bad) => {
            let token = authorization.and_then(bearer_token).ok_or(bad.clone())?;
            let partner = partner_of_token(state, token).ok_or(bad)?;
            Ok((Caller::Anonymous, Some(FeedPartner(partner.clone()))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_alerts_are_public_parcel_alerts_are_not() {
        let public = Reader {
            public_parcels: vec!["urn:ngsi-ld:AgriParcel:pins-2".into()],
            ..Reader::default()
        };
        let partner = Reader {
            own_parcels: vec!["urn:ngsi-ld:AgriParcel:pins-1".into()],
            ..public.clone()
        };
        let (mine, shared) = (
            "urn:ngsi-ld:AgriParcel:pins-1",
            "urn:ngsi-ld:AgriParcel:pins-2",
        );
        assert!(public.sees_alert(AlertKind::Fill, "urn:ngsi-ld:WasteContainer:b1"));
        assert!(public.sees_alert(AlertKind::Frost, shared));
        assert!(!public.sees_alert(AlertKind::Frost, mine));
        assert!(!public.sees_alert(AlertKind::DownyMildew, mine));
        assert!(!public.sees_alert(AlertKind::Other, mine));
        assert!(partner.sees_alert(AlertKind::PowderyMildew, mine));
        assert!(public.sees_alert(AlertKind::Frost, "urn:ngsi-ld:WeatherObserved:st-1"));
    }
}
