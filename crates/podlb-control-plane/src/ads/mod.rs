//! The ADS server (to be written).
