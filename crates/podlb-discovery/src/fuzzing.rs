//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the
//! docs, and free to change with the targets). They reach the private
//! decoding of what the Kubernetes API server sends: an EndpointSlice's
//! JSON becomes the endpoints of a `kubernetes:///` target.

/// The endpoints a `kubernetes:///` target on `port` takes from the
/// EndpointSlice whose JSON (one watch event's object, as kube-rs decodes
/// it) is `json`; `Err` when the JSON is not an object with metadata, as
/// kube-rs would reject it before podlb sees it.
#[cfg(feature = "kubernetes")]
pub fn endpoint_slice(
    json: &[u8],
    port: podlb_core::PortRef,
) -> Result<Vec<podlb_core::Endpoint>, serde_json::Error> {
    let obj: kube::core::DynamicObject = serde_json::from_slice(json)?;
    let target = podlb_core::KubernetesTarget {
        service: "fuzz".into(),
        namespace: None,
        port,
    };
    Ok(crate::kubernetes::read(obj, &target).1)
}
