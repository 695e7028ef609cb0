//! Compiles the plugin protocol's messages and client stubs from
//! `proto/tfplugin{5,6}.proto` with protox (a protobuf compiler in Rust: no
//! system `protoc` to install) and tonic's code generator.

fn main() {
    let files = ["proto/tfplugin5.proto", "proto/tfplugin6.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = match protox::compile(files, ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("the plugin protocol definitions do not compile: {e}"),
    };
    if let Err(e) = tonic_prost_build::configure().build_server(false).build_transport(false).compile_fds(fds) {
        panic!("generating the plugin protocol client failed: {e}");
    }
}
