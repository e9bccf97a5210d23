//! Fuzzes the JSON API's request bodies through the parsing its handlers
//! use: the request structs of `tend_server::api` and the `ProcessSpec` of
//! `POST /v1/processes`. Each may be refused, never panic; what is accepted
//! must survive being written back and read again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tend_server::api::{SignalRequest, StartRequest, TargetsRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = tend_server::parse_body::<TargetsRequest>(data) {
        let again = serde_json::to_vec(&r).expect("a request serializes");
        let back: TargetsRequest = tend_server::parse_body(&again).expect("and reads back");
        assert_eq!(back, r);
    }
    if let Ok(r) = tend_server::parse_body::<StartRequest>(data) {
        let again = serde_json::to_vec(&r).expect("a request serializes");
        let back: StartRequest = tend_server::parse_body(&again).expect("and reads back");
        assert_eq!(back, r);
    }
    if let Ok(r) = tend_server::parse_body::<SignalRequest>(data) {
        let again = serde_json::to_vec(&r).expect("a request serializes");
        let back: SignalRequest = tend_server::parse_body(&again).expect("and reads back");
        assert_eq!(back, r);
    }
    if let Ok((spec, _logs_given)) = tend_server::parse_add_request(data) {
        // A spec the API accepts has a valid name and survives a round trip.
        assert!(!spec.name.as_str().is_empty());
        let again = serde_json::to_vec(&spec).expect("a spec serializes");
        let (back, _) = tend_server::parse_add_request(&again).expect("and reads back");
        assert_eq!(back.name, spec.name);
        assert_eq!(back.command, spec.command);
    }
});
