//! A running hub for the API scenarios: `vallee up` (or `serve`) as a child process on a
//! test's world, configured with staff, researcher and partner tokens, with GraphQL over
//! HTTP and graphql-transport-ws subscriptions as clients.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use vallee_graphql::auth::sha256_hex;

use crate::helpers::*;

/// The INSEE code of Gignac, where the town hall's staff act.
pub const GIGNAC: &str = "34114";
/// The token of the town hall of Gignac (staff of one commune).
pub const GIGNAC_STAFF: &str = "token-of-the-gignac-town-hall";
/// The token of the intercommunality's staff (every commune).
pub const CCVH_STAFF: &str = "token-of-the-intercommunality";
/// The token of a researcher (`POST /sql`, research-only shares).
pub const RESEARCHER: &str = "token-of-a-researcher";
/// Mutations a token may make per minute on the test hub.
pub const TOKEN_MUTATION_LIMIT: usize = 15;
/// The token of the vineyard partner owning the parcels `pins-1` (private), `pins-2`
/// (shared with the public) and `pins-3` (shared with researchers).
pub const PARTNER: &str = "token-of-domaine-des-pins";

/// Key of the bins' gateway in Gignac (field door, bin readings only).
pub const GATEWAY: &str = "key-of-the-gignac-bins-gateway";

/// A running hub (`vallee up` on the world's broker, no simulator) and an HTTP client.
pub struct Hub {
    pub child: Child,
    pub http: SocketAddr,
    pub client: reqwest::Client,
}

/// The test configuration, then `extra`: its leading keys (before any `[table]`) go to
/// `[api]`, the rest is appended.
fn write_config(world: &World, extra: &str) -> std::path::PathBuf {
    let base = std::fs::read_to_string(world.config_file()).unwrap();
    let tables = if extra.trim_start().starts_with('[') {
        0
    } else {
        extra.find("\n[").map_or(extra.len(), |i| i + 1)
    };
    let (api_keys, extra) = extra.split_at(tables);
    let text = format!(
        "{base}\n[stream]\nidle_timeout_ms = 2000\nflush_interval_ms = 500\n\n[api]\nmutations_per_minute_per_token = {TOKEN_MUTATION_LIMIT}\ncors_origins = [\"https://tableau.example.fr\"]\ntoken_secret = \"shared-by-the-replicas\"\npublish_interval_s = 1\nsql_max_rows = 2\npublisher_siret = \"24340069400010\"\n{api_keys}\n\n\
         [[api.staff]]\nname = \"mairie-gignac\"\ntoken_sha256 = \"{}\"\ncommune = \"{GIGNAC}\"\n\n\
         [[api.staff]]\nname = \"ccvh\"\ntoken_sha256 = \"{}\"\n\n\
         [[api.researchers]]\nname = \"inrae-montpellier\"\ntoken_sha256 = \"{}\"\n\n\
         [[api.partners]]\nname = \"domaine-des-pins\"\ntoken_sha256 = \"{}\"\nparcels = [\"urn:ngsi-ld:AgriParcel:pins-1\", \"urn:ngsi-ld:AgriParcel:pins-2\", \"urn:ngsi-ld:AgriParcel:pins-3\"]\n\
         share_public = [\"urn:ngsi-ld:AgriParcel:pins-2\"]\nshare_researchers = [\"urn:ngsi-ld:AgriParcel:pins-3\"]\n\n\
         [[api.gateways]]\nname = \"passerelle-gignac\"\nkey_sha256 = \"{}\"\nstreams = [\"waste_containers\", \"tourism\"]\n\n\
         [[api.devices]]\ndev_eui = \"0101010101010101\"\nentity_id = \"urn:ngsi-ld:WasteContainer:gignac-lora-1\"\n\
         profile = \"ultrasonic_fill\"\ndepth_mm = 1200.0\nlatitude = 43.6521\nlongitude = 3.5512\n\n\
         [[api.devices]]\ndev_eui = \"0202020202020202\"\nentity_id = \"abbaye-de-gellone\"\n\
         profile = \"people_counter\"\nlatitude = 43.7339\nlongitude = 3.5498\n",
        sha256_hex(GIGNAC_STAFF),
        sha256_hex(CCVH_STAFF),
        sha256_hex(RESEARCHER),
        sha256_hex(PARTNER),
        sha256_hex(GATEWAY),
    ) + extra;
    let path = world.dir.path().join("api.toml");
    std::fs::write(&path, text).unwrap();
    path
}

impl Hub {
    /// `vallee up` (ingest, stream stage, API) on the world's broker and data dir.
    pub async fn start(world: &World, name: &str) -> Hub {
        Hub::spawn(world, name, &["up", "--no-simulate"], &world.data_dir()).await
    }

    /// `vallee up` with `extra` appended to the configuration file.
    pub async fn start_with(world: &World, name: &str, extra: &str) -> Hub {
        Hub::spawn_with(
            world,
            name,
            &["up", "--no-simulate"],
            &world.data_dir(),
            extra,
        )
        .await
    }

    /// `vallee <args…>` on the world's broker, with its own data dir.
    pub async fn spawn(world: &World, name: &str, args: &[&str], data_dir: &Path) -> Hub {
        Hub::spawn_with(world, name, args, data_dir, "").await
    }

    /// [`Hub::spawn`] with `extra` in the configuration file.
    pub async fn spawn_with(
        world: &World,
        name: &str,
        args: &[&str],
        data_dir: &Path,
        extra: &str,
    ) -> Hub {
        let http = free_addr();
        let log = std::fs::File::create(world.dir.path().join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vallee"))
            .args(["--config", path_str(&write_config(world, extra))])
            .args(args)
            .args(["--kafka-brokers", &world.brokers()])
            .args(["--data-dir", path_str(data_dir)])
            .args(["--http-addr", &http.to_string()])
            .env("RUST_LOG", child_log())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let hub = Hub {
            child,
            http,
            client: reqwest::Client::new(),
        };
        eventually(Duration::from_secs(90), "the API is ready", || async {
            matches!(http_get(http, "/readyz"), Ok((200, _)))
        })
        .await;
        hub
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Posts a GraphQL request; the whole JSON answer.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// Posts a GraphQL request that must succeed; its `data`.
    pub async fn ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let answer = self.gql(token, query, variables).await;
        assert!(answer.get("errors").is_none(), "{query}: {answer}");
        answer["data"].clone()
    }

    pub async fn token(&self) -> String {
        let data = self
            .ok(None, "mutation { issueCitizenToken { token } }", json!({}))
            .await;
        data["issueCitizenToken"]["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn stop(mut self) {
        terminate(&self.child);
        let status = wait_exit(&mut self.child, Duration::from_secs(60)).await;
        assert!(status.success(), "vallee up exited with {status}");
    }
}

/// A test that fails before `stop` must not leave its hub running.
impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `extensions.code` of the first error.
pub fn code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {answer}"))
}

/// Subscribes over graphql-transport-ws; the socket, acknowledged and subscribed.
pub async fn subscribe(
    http: SocketAddr,
    query: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    subscribe_with(http, json!({}), query).await
}

/// A graphql-transport-ws subscription, `payload` in its `connection_init`.
pub async fn subscribe_with(
    http: SocketAddr,
    payload: Value,
    query: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{http}/graphql/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::Text(
        json!({"type": "connection_init", "payload": payload})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let ack = ws.next().await.unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack}");
    ws.send(Message::Text(
        json!({"id": "1", "type": "subscribe", "payload": {"query": query}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    // The server answers nothing until the first event: give it a moment to register.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ws
}

/// The next `next` message's `payload.data`, within `timeout`.
pub async fn next_data(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    timeout: Duration,
) -> Value {
    tokio::time::timeout(timeout, async {
        loop {
            let m = ws.next().await.unwrap().unwrap();
            let Ok(text) = m.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap_or_default();
            if v["type"] == "next" {
                return v["payload"]["data"].clone();
            }
        }
    })
    .await
    .expect("a subscription message in time")
}

/// A new world (three partitions a topic) and a hub on it. Bound as
/// `let (world, hub) = …`, the hub is dropped (killed) before its world is removed.
pub async fn world_and_hub() -> (World, Hub) {
    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub-1").await;
    (world, hub)
}
