//! End-to-end scenarios against the real thing: an embedded Tansu broker speaking the Kafka
//! protocol, real Delta tables on disk, the real `vallee` binary as a child process where a
//! scenario kills or stops it. One test binary (link time), a module per area, a test per
//! scenario on its own world.

mod helpers;
mod hub;

mod api;
mod backlog;
mod broker_loss;
mod browser;
mod cli;
mod contract;
mod dashboard;
mod erasure;
mod faults;
mod field_doors;
mod graceful_stop;
mod hostile;
mod ideas;
mod kill_restart;
mod lake_repair;
mod mqtt;
mod notifications;
mod object_storage;
mod open_data;
mod pages;
mod partner_push;
mod partners;
mod photos;
mod places;
mod privacy;
mod rebalance;
mod recovery;
mod reports;
mod research;
mod rounds;
mod sensor_health;
mod simulator;
mod stream;
mod stream_members;
mod waste;
