//! The lake on S3-compatible object storage: a real S3-protocol server (moto, from PyPI,
//! which honours conditional writes), ingest SIGKILLed at arbitrary moments and restarted
//! with `--lake s3://…`, then exact accounting read back over S3, upkeep, and Python
//! `deltalake` reading the same tables from the bucket.
//!
//! CI installs moto (`VALLEE_REQUIRE_PYTHON=1`); elsewhere the test skips, saying so,
//! when it is missing.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use vallee_lake::{Lake, LakeOptions};
use vallee_schemas::contract::Table;

use crate::helpers::*;
use crate::hub::Hub;

/// A moto S3 server on a free port, killed on drop.
pub struct S3Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    pub async fn start() -> Option<S3Server> {
        let mut check = Command::new("python3");
        check.args(["-c", "import moto.server, flask"]);
        if !installed(
            &mut check,
            "the S3 test server (pip install 'moto[server]')",
        ) {
            return None;
        }
        let addr = free_addr();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(addr.port().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = S3Server { child, addr };
        eventually(Duration::from_secs(30), "the S3 server", || async {
            TcpStream::connect(addr).is_ok()
        })
        .await;
        Some(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates a bucket (moto checks no signature on this request).
    pub async fn create_bucket(&self, bucket: &str) {
        let answer = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{answer:?}");
    }

    /// The file's settings for a lake in this server's `bucket` (credentials too: moto
    /// takes any; a real deployment keeps them in `AWS_*` variables).
    pub fn lake_config(&self, url: &str) -> String {
        format!(
            "[lake]\nurl = \"{url}\"\n\n[lake.storage]\naws_endpoint = \"{}\"\naws_allow_http = \"true\"\n\
             aws_region = \"us-east-1\"\naws_access_key_id = \"test\"\naws_secret_access_key = \"test\"\n",
            self.endpoint()
        )
    }

    pub fn lake_options(&self, url: &str) -> LakeOptions {
        LakeOptions {
            url: Some(url.into()),
            storage: BTreeMap::from(
                [
                    ("aws_endpoint", self.endpoint()),
                    ("aws_allow_http", "true".into()),
                    ("aws_region", "us-east-1".into()),
                    ("aws_access_key_id", "test".into()),
                    ("aws_secret_access_key", "test".into()),
                ]
                .map(|(k, v)| (k.to_string(), v)),
            ),
            ..Default::default()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_killed_at_any_moment_lands_everything_once_in_a_bucket() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    s3.create_bucket("vallee").await;
    let url = "s3://vallee/valley/lake";
    let world = World::new(3).await;
    let events = valley_events(6_000, 23);
    let (rounds_part, trickled) = events.split_at(3_000);
    // A trickle keeps arriving while processes are killed; each round also starts with a
    // slice of its own, so every new process has something to land before it is killed.
    let producer = world.trickle(trickled.to_vec(), 250, Duration::from_millis(1_000));
    let lake = Lake::open(s3.lake_options(url)).await.unwrap();
    let config = s3.lake_config(url);
    let mut produced = 0;
    for (round, after_ms) in [0u64, 650, 1_300].into_iter().enumerate() {
        produced += world.produce(&rounds_part[round * 1_000..][..1_000]).await;
        let before = total(&lake).await;
        let mut child = world.spawn_stage_with("ingest", &format!("ingest-{round}"), &[], &config);
        eventually(
            Duration::from_secs(300),
            "the new process ingesting into the bucket",
            || async { paced(total(&lake)).await > before },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    produced += producer.await.unwrap();
    assert_eq!(produced, events.len() as u64);
    let mut child = world.spawn_stage_with("ingest", "ingest-final", &[], &config);
    eventually(
        Duration::from_secs(300),
        "every produced message in the bucket, the last process assigned",
        || async {
            paced(total(&lake)).await >= produced
                && world.log("ingest-final").contains("start=Some(")
        },
    )
    .await;
    terminate(&child);
    assert!(
        wait_exit(&mut child, Duration::from_secs(30))
            .await
            .success()
    );
    assert_exactly_once(&lake, produced).await;
    // Nothing of the lake went to the data directory: the tables are in the bucket.
    assert!(
        !world
            .data_dir()
            .join("lake")
            .join("waste_containers")
            .exists(),
        "tables written to the local folder instead of the bucket"
    );
    let landed = counts(&lake).await;

    // Upkeep works the same on the bucket: compaction and a checkpoint change no count.
    for task in ["optimize", "checkpoint"] {
        let out = Command::new(env!("CARGO_BIN_EXE_vallee"))
            .args([
                "--config",
                world.dir.path().join("ingest-final.toml").to_str().unwrap(),
            ])
            .args(["lake", task, "--data-dir", path_str(&world.data_dir())])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "vallee lake {task}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let reopened = Lake::open(s3.lake_options(url)).await.unwrap();
    assert_eq!(counts(&reopened).await, landed);
    python_reads_the_bucket(&s3, url, &landed);

    // Two API replicas with nothing on disk in common read the same bins from the bucket.
    let mut replicas = Vec::new();
    for name in ["replica-a", "replica-b"] {
        let data = world.dir.path().join(name);
        replicas.push(Hub::spawn_with(&world, name, &["serve"], &data, &config).await);
    }
    let bins = "{ bins { id fillingLevel dateObserved } }";
    let mut answers = Vec::new();
    for replica in &replicas {
        eventually(
            Duration::from_secs(60),
            "bins read from the bucket",
            || async {
                let answer = replica.gql(None, bins, json!({})).await["data"]["bins"].clone();
                answer.as_array().is_some_and(|b| !b.is_empty())
            },
        )
        .await;
        answers.push(replica.gql(None, bins, json!({})).await["data"]["bins"].clone());
    }
    assert_eq!(
        answers[0], answers[1],
        "two replicas on one bucket disagree"
    );
    // A resident's browser sends a photo to one replica and the report to the other (one
    // address, a load balancer between): the photo is in the bucket, the report takes it.
    let sent = replicas[0]
        .client
        .post(replicas[0].url("/media/v1/photos"))
        .header("content-type", "image/jpeg")
        .body(crate::photos::phone_photo())
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 201);
    let photo = sent.json::<serde_json::Value>().await.unwrap()["photoId"]
        .as_str()
        .unwrap()
        .to_string();
    let submit =
        "mutation($input: SubmitReportInput!) { submitReport(input: $input) { report { id } } }";
    let graffiti = json!({"input": {"serviceCode": "graffiti", "description": "Tag sur le mur de la gare",
        "lat": 43.6521, "long": 3.5512, "photos": [photo.clone()]}});
    // Refused (BAD_USER_INPUT) when the replica does not find the photo in its store; the
    // public does not see a photo the town hall has not accepted yet.
    let submitted = replicas[1].ok(None, submit, graffiti).await;
    assert!(
        submitted["submitReport"]["report"]["id"].is_string(),
        "{submitted}"
    );
    assert!(
        !world.dir.path().join("replica-a").join("_media").exists()
            && !world
                .dir
                .path()
                .join("replica-a")
                .join("public")
                .join("_media")
                .exists(),
        "the photo stayed on the replica that took it"
    );
    // The published copies follow the lake into the bucket (`<prefix>/_public/`).
    let public = reopened
        .beside("public", &world.dir.path().join("unused"))
        .unwrap();
    eventually(
        Duration::from_secs(90),
        "the bins' daily open dataset published in the bucket",
        || async { paced(public.exists("remplissage-conteneurs-quotidien")).await },
    )
    .await;
    let local = world.dir.path().join("replica-a").join("public");
    assert!(
        !local.join("remplissage-conteneurs-quotidien").exists(),
        "published on a replica's disk instead of the bucket"
    );
    assert!(
        !world
            .dir
            .path()
            .join("replica-a")
            .join("lake")
            .join("waste_containers")
            .exists(),
        "a replica read a lake of its own"
    );
    for replica in replicas {
        replica.stop().await;
    }
}

/// A count of every table reads each one's log and files from the bucket: a test polling
/// it ten times a second would be most of the S3 server's load (moto is one Python
/// process), so it polls every two seconds.
async fn paced<T>(read: impl std::future::Future<Output = T>) -> T {
    tokio::time::sleep(Duration::from_secs(2)).await;
    read.await
}

/// Python `deltalake` reads the tables from the bucket with the same counts.
fn python_reads_the_bucket(s3: &S3Server, url: &str, counts: &BTreeMap<Table, u64>) {
    let script = format!("{}/tests/python/read_lake.py", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&script)
        .arg(url)
        .args(counts.keys().map(|t| t.name()))
        .env("AWS_ENDPOINT_URL", s3.endpoint())
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    let required = std::env::var("VALLEE_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    if out.status.code() == Some(3) && !required {
        eprintln!("python deltalake not installed: reading the bucket from Python skipped");
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: BTreeMap<String, u64> = serde_json::from_slice(&out.stdout).unwrap();
    for (t, n) in counts {
        assert_eq!(read.get(t.name()), Some(n), "python read {read:?}");
    }
}
