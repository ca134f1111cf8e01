//! TLS set-up shared by the HTTP clients. Two rustls crypto back ends end up linked (reqwest
//! brings aws-lc-rs, slack-morphism's connector ring), so rustls cannot pick one by itself;
//! kube-rs asks rustls for the process default. `init` installs aws-lc-rs as that default.

use std::sync::Once;

static INIT: Once = Once::new();

/// Install aws-lc-rs as the process-wide rustls crypto provider (once; later calls do
/// nothing).
pub fn init() {
    INIT.call_once(|| {
        if rustls::crypto::aws_lc_rs::default_provider()
            .install_default()
            .is_err()
        {
            // Someone installed a provider first: theirs stays, which is what rustls wants.
            tracing::debug!("a rustls crypto provider was already installed");
        }
    });
}
