//! Setting an existing topic's configuration with IncrementalAlterConfigs (KIP-339).
//!
//! rdkafka 0.39 wraps only the older AlterConfigs request (which replaces a topic's whole
//! configuration, and which Tansu 0.6 does not answer); librdkafka itself has the
//! incremental one, which Kafka and Tansu both serve. This calls it through rdkafka's
//! bindings to the C API, on a queue of its own, blocking until the answer or a timeout:
//! run it on a blocking thread.

use std::ffi::{CStr, CString, c_char, c_int};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// A C string of librdkafka's, owned by it, as text.
///
/// # Safety
/// `s` is null or points to a NUL-terminated string that outlives the call.
unsafe fn text(s: *const c_char) -> String {
    if s.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated, by the caller's contract.
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

fn c_string(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} holds a NUL byte"))
}

/// Sets `configs` (name, value) on `topic`, leaving its other settings as they are.
/// `Err` says why the broker (or the client) refused, in its words.
pub fn set_topic_configs(
    client: &ClientConfig,
    topic: &str,
    configs: &[(&str, String)],
    timeout: Duration,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = client.create().map_err(|e| e.to_string())?;
    let name = c_string(topic)?;
    let pairs = configs
        .iter()
        .map(|(k, v)| Ok((c_string(k)?, c_string(v)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let timeout_ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    let rk = admin.inner().native_ptr();
    // SAFETY: every pointer passed comes from librdkafka's own constructors (or from the
    // CStrings above, alive for the whole block), each object is destroyed exactly once
    // after its last use, and `admin` (the client `rk` belongs to) outlives the block.
    unsafe {
        let resource = rd::rd_kafka_ConfigResource_new(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            name.as_ptr(),
        );
        if resource.is_null() {
            return Err("librdkafka refused the topic resource".into());
        }
        for (k, v) in &pairs {
            let error = rd::rd_kafka_ConfigResource_add_incremental_config(
                resource,
                k.as_ptr(),
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                v.as_ptr(),
            );
            if !error.is_null() {
                let message = text(rd::rd_kafka_error_string(error));
                rd::rd_kafka_error_destroy(error);
                rd::rd_kafka_ConfigResource_destroy(resource);
                return Err(message);
            }
        }
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        );
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = rd::rd_kafka_queue_new(rk);
        let mut resources = [resource];
        // The request copies the resources and options: they go right after.
        rd::rd_kafka_IncrementalAlterConfigs(rk, resources.as_mut_ptr(), 1, options, queue);
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_ConfigResource_destroy(resource);
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms.saturating_add(1_000));
        let outcome = if event.is_null() {
            Err(format!("no answer within {timeout:?}"))
        } else if rd::rd_kafka_event_error(event)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            Err(text(rd::rd_kafka_event_error_string(event)))
        } else {
            let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event);
            if result.is_null() {
                Err("the broker answered something else".into())
            } else {
                let mut n = 0;
                let list = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut n);
                (0..n)
                    .map(|i| *list.add(i))
                    .map(|r| (rd::rd_kafka_ConfigResource_error(r), r))
                    .find(|(code, _)| *code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
                    .map_or(Ok(()), |(code, r)| {
                        let detail = text(rd::rd_kafka_ConfigResource_error_string(r));
                        Err(format!("{}: {detail}", RDKafkaErrorCode::from(code)))
                    })
            }
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        outcome
    }
}
