//! Request paths of the management API, in both shapes clients use:
//!
//! * ARM: `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Media/mediaServices/{account}/…`
//!   (the fixed segments compare case-insensitively, as Azure Resource Manager does);
//! * MK.IO: `/api/ams/{project}/…`.
//!
//! After the prefix: `{collection}`, `{collection}/{name}`, `{collection}/{name}/{action}`,
//! `assets/{asset}/assetFilters[/{name}]` and `liveEvents/{event}/liveOutputs[/{name}]`. The subscription, group, account and project are
//! not checked: one origin serves one account, whatever a client calls it.

use crate::manage::error::{ApiError, ApiResult};
use crate::store::{
    asset_filters, live_outputs, ACCOUNT_FILTERS, ASSETS, CONTENT_KEY_POLICIES, LIVE_EVENTS, STREAMING_LOCATORS,
    STREAMING_POLICIES,
};

/// The path segment of an asset's filters: `assets/{asset}/assetFilters`.
const ASSET_FILTERS: &str = "assetFilters";
/// The path segment of a live event's outputs: `liveEvents/{event}/liveOutputs`.
const LIVE_OUTPUTS: &str = "liveOutputs";

/// A collection of resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Collection {
    Assets,
    StreamingLocators,
    StreamingPolicies,
    ContentKeyPolicies,
    AccountFilters,
    /// The filters of one asset.
    AssetFilters(String),
    LiveEvents,
    /// The outputs of one live event.
    LiveOutputs(String),
}

impl Collection {
    /// The collection's path below the account: `assets`, `assets/{asset}/assetFilters`, …
    pub(super) fn path(&self) -> String {
        match self {
            Collection::Assets => ASSETS.into(),
            Collection::StreamingLocators => STREAMING_LOCATORS.into(),
            Collection::StreamingPolicies => STREAMING_POLICIES.into(),
            Collection::ContentKeyPolicies => CONTENT_KEY_POLICIES.into(),
            Collection::AccountFilters => ACCOUNT_FILTERS.into(),
            Collection::AssetFilters(asset) => asset_filters(asset),
            Collection::LiveEvents => LIVE_EVENTS.into(),
            Collection::LiveOutputs(event) => live_outputs(event),
        }
    }

    /// The ARM resource type (`type` of every body).
    pub(super) fn resource_type(&self) -> String {
        match self {
            Collection::AssetFilters(_) => format!("Microsoft.Media/mediaservices/{ASSETS}/{ASSET_FILTERS}"),
            Collection::LiveOutputs(_) => format!("Microsoft.Media/mediaservices/{LIVE_EVENTS}/{LIVE_OUTPUTS}"),
            other => format!("Microsoft.Media/mediaservices/{}", other.kind()),
        }
    }

    /// The last segment of the collection's path, which names its resource type.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Collection::Assets => ASSETS,
            Collection::StreamingLocators => STREAMING_LOCATORS,
            Collection::StreamingPolicies => STREAMING_POLICIES,
            Collection::ContentKeyPolicies => CONTENT_KEY_POLICIES,
            Collection::AccountFilters => ACCOUNT_FILTERS,
            Collection::AssetFilters(_) => ASSET_FILTERS,
            Collection::LiveEvents => LIVE_EVENTS,
            Collection::LiveOutputs(_) => LIVE_OUTPUTS,
        }
    }

    fn top_level(segment: &str) -> Option<Collection> {
        [
            (ASSETS, Collection::Assets),
            (STREAMING_LOCATORS, Collection::StreamingLocators),
            (STREAMING_POLICIES, Collection::StreamingPolicies),
            (CONTENT_KEY_POLICIES, Collection::ContentKeyPolicies),
            (ACCOUNT_FILTERS, Collection::AccountFilters),
            (LIVE_EVENTS, Collection::LiveEvents),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(segment))
        .map(|(_, c)| c)
    }
}

/// A POST action on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    ListStreamingLocators,
    ListPaths,
    ListContentKeys,
    GetPolicyPropertiesWithSecrets,
    Start,
    Stop,
    Reset,
}

impl Action {
    fn parse(collection: &Collection, segment: &str) -> Option<Action> {
        let actions: &[(&str, Action)] = match collection {
            Collection::Assets => &[("listStreamingLocators", Action::ListStreamingLocators)],
            Collection::StreamingLocators => {
                &[("listPaths", Action::ListPaths), ("listContentKeys", Action::ListContentKeys)]
            }
            Collection::ContentKeyPolicies => {
                &[("getPolicyPropertiesWithSecrets", Action::GetPolicyPropertiesWithSecrets)]
            }
            Collection::LiveEvents => &[("start", Action::Start), ("stop", Action::Stop), ("reset", Action::Reset)],
            _ => &[],
        };
        actions.iter().find(|(name, _)| name.eq_ignore_ascii_case(segment)).map(|(_, action)| *action)
    }
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    List(Collection),
    One(Collection, String),
    Action(Collection, String, Action),
}

/// A parsed path: the account prefix as the client spelled it (resource ids start with it)
/// and the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Route {
    pub account: String,
    pub target: Target,
}

const ARM_FIXED: [(usize, &str); 4] =
    [(0, "subscriptions"), (2, "resourceGroups"), (4, "providers"), (6, "mediaServices")];

pub(super) fn parse(path: &str) -> ApiResult<Route> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let prefix_len = if segments.len() >= 8
        && ARM_FIXED.iter().all(|(i, s)| segments[*i].eq_ignore_ascii_case(s))
        && segments[5].eq_ignore_ascii_case("Microsoft.Media")
    {
        8
    } else if segments.len() >= 3 && segments[0] == "api" && segments[1] == "ams" {
        3
    } else {
        return Err(ApiError::not_found(
            "not an API path: /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Media/mediaServices/{account}/… or /api/ams/{project}/…",
        ));
    };
    let account = format!("/{}", segments[..prefix_len].join("/"));
    let rest = &segments[prefix_len..];
    let unknown = || ApiError::not_found(format!("no such resource: /{}", rest.join("/")));
    let Some(collection) = rest.first().and_then(|s| Collection::top_level(s)) else {
        return Err(unknown());
    };
    let name = |s: &str| {
        if s.is_empty() {
            Err(ApiError::not_found("empty resource name"))
        } else {
            Ok(s.to_string())
        }
    };
    let target = match (rest.len(), &collection) {
        (1, _) => Target::List(collection),
        (2, _) => Target::One(collection, name(rest[1])?),
        (3, Collection::Assets) if rest[2].eq_ignore_ascii_case(ASSET_FILTERS) => {
            Target::List(Collection::AssetFilters(name(rest[1])?))
        }
        (4, Collection::Assets) if rest[2].eq_ignore_ascii_case(ASSET_FILTERS) => {
            Target::One(Collection::AssetFilters(name(rest[1])?), name(rest[3])?)
        }
        (3, Collection::LiveEvents) if rest[2].eq_ignore_ascii_case(LIVE_OUTPUTS) => {
            Target::List(Collection::LiveOutputs(name(rest[1])?))
        }
        (4, Collection::LiveEvents) if rest[2].eq_ignore_ascii_case(LIVE_OUTPUTS) => {
            Target::One(Collection::LiveOutputs(name(rest[1])?), name(rest[3])?)
        }
        (3, _) => {
            let action = Action::parse(&collection, rest[2]).ok_or_else(unknown)?;
            Target::Action(collection, name(rest[1])?, action)
        }
        _ => return Err(unknown()),
    };
    Ok(Route { account, target })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_path_shapes_name_the_same_targets() {
        let arm = "/subscriptions/s/resourcegroups/rg/providers/microsoft.media/mediaservices/acct";
        for (prefix, account) in [(arm, arm), ("/api/ams/proj", "/api/ams/proj")] {
            let r = parse(&format!("{prefix}/streamingLocators/loc1/listPaths")).unwrap();
            assert_eq!(r.account, account);
            assert_eq!(r.target, Target::Action(Collection::StreamingLocators, "loc1".into(), Action::ListPaths));
            let r = parse(&format!("{prefix}/Assets/a1/assetFilters/f1")).unwrap();
            assert_eq!(r.target, Target::One(Collection::AssetFilters("a1".into()), "f1".into()));
            assert_eq!(
                parse(&format!("{prefix}/accountFilters")).unwrap().target,
                Target::List(Collection::AccountFilters)
            );
            let r = parse(&format!("{prefix}/liveEvents/ev1/liveOutputs/out1")).unwrap();
            assert_eq!(r.target, Target::One(Collection::LiveOutputs("ev1".into()), "out1".into()));
            let r = parse(&format!("{prefix}/liveEvents/ev1/start")).unwrap();
            assert_eq!(r.target, Target::Action(Collection::LiveEvents, "ev1".into(), Action::Start));
            assert_eq!(parse(&format!("{prefix}/jobs")).unwrap_err().status, 404);
            assert_eq!(parse(&format!("{prefix}/assets/a1/listPaths")).unwrap_err().status, 404);
        }
        assert_eq!(parse("/api/other/x/assets").unwrap_err().status, 404);
    }
}
