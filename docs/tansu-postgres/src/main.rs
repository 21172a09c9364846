//! One Tansu broker on PostgreSQL:
//! `tansu-postgres-broker <node id> <listen host:port> <advertised host:port> <postgres url>`.
//!
//! Every broker sharing a database answers Metadata as the only node, leader of every
//! partition: start them all with the same node id and the load balancer's address as the
//! advertised one, so that clients see one cluster wherever their connection lands.

use url::Url;

type Broker = tansu_broker::broker::Broker<
    tansu_broker::coordinator::group::administrator::Controller<tansu_storage::StorageContainer>,
    tansu_storage::StorageContainer,
>;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!(
            "usage: {} <node id> <listen host:port> <advertised host:port> <postgres url>",
            args[0]
        );
        std::process::exit(2);
    }
    let url = |address: &str| Url::parse(&format!("tcp://{address}")).expect("host:port");
    let mut broker = Broker::builder()
        .node_id(args[1].parse().expect("a node id"))
        .cluster_id("vallee")
        .incarnation_id(uuid::Uuid::new_v4())
        .advertised_listener(url(&args[3]))
        .storage(Url::parse(&args[4]).expect("a postgres:// url"))
        .listener(url(&args[2]))
        .silent(true)
        .build()
        .await
        .expect("the broker starts");
    broker
        .serve(tokio::time::Instant::now())
        .await
        .expect("the broker serves");
}
