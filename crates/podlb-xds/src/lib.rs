//! xDS for podlb: the pieces both ends of the protocol share (type URLs,
//! endpoints to and from `ClusterLoadAssignment`) and the client side that
//! turns an `xds:///NAME` target into endpoint updates.
