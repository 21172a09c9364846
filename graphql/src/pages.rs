//! The citizens' pages: `/signaler`, `/mes-signalements`, `/idees`, `/petite-enfance` and
//! `/lieux`; and the staff's back office, `/gestion` (a staff token, kept by the browser
//! for the session and sent as a bearer token like any API client's: an OpenID Connect
//! login can hand the page such a token later without changing the API). Plain HTML, CSS and JavaScript committed under `graphql/pages/`, compiled into
//! the binary, nothing loaded from the internet; the pages use the public GraphQL API like
//! any client, so every rule of the API (limits, privacy, who may do what) holds for them.
//!
//! Each page is its own fragment (`<name>.html`) inside one shell written here: the same
//! header, navigation, status line for screen readers and script on every page. The map
//! draws the communes' boundaries from `GET /communes.geojson`, the same shapes the hub
//! places reports with.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use vallee_schemas::communes::BOUNDARIES_GEOJSON;

const SCRIPT: &str = include_str!("../pages/pages.js");
const STYLE: &str = include_str!("../pages/pages.css");

/// The pages: path, title, fragment; the residents' ones first (in the navigation), then
/// the staff's back office.
const PAGES: [(&str, &str, &str); 6] = [
    (
        "signaler",
        "Signaler un problème",
        include_str!("../pages/signaler.html"),
    ),
    (
        "mes-signalements",
        "Mes signalements",
        include_str!("../pages/mes-signalements.html"),
    ),
    (
        "idees",
        "Boîte à idées",
        include_str!("../pages/idees.html"),
    ),
    (
        "petite-enfance",
        "Petite enfance",
        include_str!("../pages/petite-enfance.html"),
    ),
    (
        "lieux",
        "Lieux et ateliers numériques",
        include_str!("../pages/lieux.html"),
    ),
    (
        "gestion",
        "Gestion des demandes",
        include_str!("../pages/gestion.html"),
    ),
];

/// How many of [`PAGES`] the residents' navigation lists.
const RESIDENTS_PAGES: usize = 5;

/// A page: the shell around its fragment, its own link marked as the current page.
fn page(name: &str, title: &str, fragment: &str) -> String {
    let nav: String = PAGES[..RESIDENTS_PAGES]
        .iter()
        .map(|(path, label, _)| {
            let current = if *path == name {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!("<li><a href=\"/{path}\"{current}>{label}</a></li>")
        })
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{title} — Vallée de l'Hérault</title>\n<link rel=\"stylesheet\" href=\"/pages/pages.css\">\n\
<script src=\"/pages/pages.js\" defer></script>\n</head>\n<body data-page=\"{name}\">\n\
<a class=\"skip\" href=\"#contenu\">Aller au contenu</a>\n<header>\n\
<p class=\"site\">Communauté de communes Vallée de l'Hérault</p>\n\
<nav aria-label=\"Services aux habitants\"><ul>{nav}<li><a href=\"/\">Tableau de bord</a></li></ul></nav>\n\
</header>\n<div id=\"annonce\" class=\"sr\" role=\"status\" aria-live=\"polite\"></div>\n\
<main id=\"contenu\" tabindex=\"-1\">\n{fragment}</main>\n<footer><p>Données ouvertes : \
<a href=\"/opendata/catalog.csv\">catalogue (CSV)</a> · API : <a href=\"/graphql\">GraphQL</a> · \
<a href=\"/open311/v2/services.json\">Open311</a> · <a href=\"/gestion\">Espace agents</a></p></footer>\n</body>\n</html>\n"
    )
}

pub fn router() -> Router {
    let mut router = Router::new()
        .route(
            "/pages/pages.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
                    .into_response()
            }),
        )
        .route(
            "/pages/pages.css",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
            }),
        )
        .route(
            "/communes.geojson",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/geo+json")],
                    BOUNDARIES_GEOJSON,
                )
                    .into_response()
            }),
        );
    for (name, title, fragment) in PAGES {
        let html = page(name, title, fragment);
        router = router.route(
            &format!("/{name}"),
            get(move || {
                let html = html.clone();
                async move { Html(html) }
            }),
        );
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_is_french_with_one_title_one_main_and_its_own_link_current() {
        for (name, title, fragment) in PAGES {
            let html = page(name, title, fragment);
            assert!(html.starts_with("<!doctype html>\n<html lang=\"fr\">"));
            assert_eq!(html.matches("<h1>").count(), 1, "{name}: one h1");
            assert_eq!(html.matches("<main").count(), 1, "{name}");
            let current = usize::from(name != "gestion");
            assert_eq!(
                html.matches("aria-current=\"page\"").count(),
                current,
                "{name}"
            );
            // Every form control has a label (RGAA 11.1).
            for id in html
                .split("<input")
                .skip(1)
                .chain(html.split("<select").skip(1))
                .chain(html.split("<textarea").skip(1))
            {
                let id = id
                    .split("id=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or_else(|| panic!("{name}: a control without id"));
                assert!(
                    html.contains(&format!("for=\"{id}\"")),
                    "{name}: #{id} has no label"
                );
            }
        }
    }
}
