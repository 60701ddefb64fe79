//! Compiles proto/podlb_test.proto with protox (pure Rust), so the tests need
//! no protoc on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/podlb_test.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["../../proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
