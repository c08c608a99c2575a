//! Compiles our own `.proto` files (the wire format is in `docs/karmada.md#estimator-wire-format`)
//! with `protox`, a pure-Rust protobuf compiler, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/k8s.proto",
        "proto/estimator_pb.proto",
        "proto/estimator_service.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Sorted maps: deterministic bytes, in the key order Go's marshaller uses.
        .btree_map(".")
        // One file nesting a module per package segment; `src/proto.rs` re-exports them flat.
        .include_file("estimator_protos.rs")
        .compile_fds(fds)?;
    Ok(())
}
