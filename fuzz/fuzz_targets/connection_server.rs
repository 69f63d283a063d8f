//! A server-side `Connection` fed an arbitrary client byte stream in arbitrary chunks, with
//! timer steps and local closes; see `ws_proto_fuzz::conn` for the layout and the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::Role;

fuzz_target!(|data: &[u8]| {
    ws_proto_fuzz::conn::fuzz_connection(Role::Server, data);
});
