//! `xds:///NAME`: the endpoints an xDS server gives for the Listener NAME,
//! through `podlb-xds`'s ADS client. This module owns only the seam: where
//! the bootstrap comes from, and wrapping the client's errors with the
//! target. The protocol (LDS → RDS → CDS → EDS, ACK/NACK, reconnects)
//! belongs to `podlb-xds` and must not leak here.

use futures_util::StreamExt;
use podlb_core::{Target, XdsTarget};
use podlb_xds::Bootstrap;

use crate::{BootstrapSource, Error, UpdateStream, XdsOptions};

/// The updates of `xds`: the client's, or, if it cannot start (no or bad
/// bootstrap, a federation authority), that one error and then nothing.
pub(crate) fn discover(target: &Target, xds: &XdsTarget, options: &XdsOptions) -> UpdateStream {
    let uri = target.uri().to_string();
    let wrap = move |error| Error::Xds {
        target: uri.clone(),
        error,
    };
    match bootstrap_for(xds, &options.bootstrap) {
        Ok(bootstrap) => podlb_xds::discover(&xds.name, bootstrap)
            .map(move |update| update.map_err(&wrap))
            .boxed(),
        Err(error) => crate::failed(wrap(error)),
    }
}

/// The bootstrap to use for `xds`, from where the options say.
fn bootstrap_for(xds: &XdsTarget, source: &BootstrapSource) -> Result<Bootstrap, podlb_xds::Error> {
    if let Some(authority) = &xds.authority {
        return Err(podlb_xds::Error::Federation {
            authority: authority.clone(),
            name: xds.name.clone(),
        });
    }
    match source {
        BootstrapSource::Env => Bootstrap::from_env(),
        BootstrapSource::File(path) => Bootstrap::from_file(path),
        BootstrapSource::Json(json) => {
            Bootstrap::from_json(json, "the xDS bootstrap given in code")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::path::PathBuf;

    fn first_error(uri: &str, bootstrap: BootstrapSource) -> String {
        let target: Target = uri.parse().unwrap();
        let podlb_core::TargetKind::Xds(xds) = target.kind() else {
            panic!("not xds: {target:?}");
        };
        let mut updates = discover(&target, xds, &XdsOptions { bootstrap });
        let first = updates.next().now_or_never().flatten();
        let Some(Err(error)) = first else {
            panic!("{uri}: expected an error at once, got {first:?}");
        };
        assert!(
            updates.next().now_or_never().is_none(),
            "the stream must stay open after its error"
        );
        error.to_string()
    }

    #[test]
    fn a_missing_bootstrap_file_is_named_with_the_target() {
        let error = first_error(
            "xds:///greeter",
            BootstrapSource::File(PathBuf::from("/nonexistent/podlb-bootstrap.json")),
        );
        assert!(error.starts_with("xds:///greeter: "), "{error}");
        assert!(
            error.contains("/nonexistent/podlb-bootstrap.json"),
            "{error}"
        );
    }

    #[test]
    fn bad_bootstrap_json_says_so() {
        let error = first_error("xds:///greeter", BootstrapSource::Json("{".into()));
        assert!(error.contains("not valid JSON"), "{error}");
    }

    #[test]
    fn an_authority_is_refused_as_federation() {
        let json = r#"{"xds_servers":[{"server_uri":"127.0.0.1:1","channel_creds":[{"type":"insecure"}]}]}"#;
        let error = first_error(
            "xds://control.example/greeter",
            BootstrapSource::Json(json.into()),
        );
        assert!(error.contains("federation"), "{error}");
        assert!(error.contains("xds:///greeter"), "{error}");
    }
}
