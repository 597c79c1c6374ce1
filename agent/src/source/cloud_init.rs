//! cloud-init delivery: `write_files` to /etc/kubeboot/node.toml, or the raw
//! user-data being a kubeboot TOML document.

use std::time::Duration;

use super::{DocumentSource, Fetcher, Loaded, SourceError};
use kubeboot_core::document::user_data::{kubeboot_document_in_user_data, NODE_FILE};
use kubeboot_core::host::{Host, UnitWait, CLOUD_INIT_UNIT};

/// Where cloud-init keeps this instance's raw user-data.
pub const USER_DATA: &str = "/var/lib/cloud/instance/user-data.txt";

/// cloud-init's own copies of the user-data, and so of a kubeboot document in
/// it: the raw and processed user-data, the merged cloud-config (which holds
/// `write_files` content) and the pickled datasource. cloud-init writes them
/// again from its datasource at every boot.
const CACHED_COPIES: [&str; 4] = [
    "user-data.txt",
    "user-data.txt.i",
    "cloud-config.txt",
    "obj.pkl",
];
const CLOUD_DIR: &str = "/var/lib/cloud";

/// The cached copies present on this node: under `instance/` and under each
/// `instances/<id>/` (`instance` is usually a link to one of those).
pub fn cached_copies(host: &Host) -> Vec<String> {
    let mut dirs = vec![format!("{CLOUD_DIR}/instance")];
    let ids = host.dir_names(format!("{CLOUD_DIR}/instances"));
    dirs.extend(ids.iter().map(|id| format!("{CLOUD_DIR}/instances/{id}")));
    dirs.iter()
        .flat_map(|d| CACHED_COPIES.iter().map(move |f| format!("{d}/{f}")))
        .filter(|p| host.exists(p))
        .collect()
}

/// The longest wait for cloud-init's init stage to finish.
const CLOUD_INIT_WAIT: Duration = Duration::from_secs(900);

/// What cloud-init writes (write_files, the raw user-data) exists once its init
/// stage has run: wait for that stage if this boot runs it. The agent starts
/// before cloud-init; a node whose document came from the kernel command line
/// or a NoCloud seed never gets here. A second call returns at once.
fn wait_for_cloud_init(host: &Host) {
    match host.wait_while_starting(CLOUD_INIT_UNIT, CLOUD_INIT_WAIT) {
        UnitWait::Ran | UnitWait::NotInBoot => {}
        UnitWait::StillRunning => tracing::warn!(
            "{CLOUD_INIT_UNIT} is still running after {} s; reading what it wrote so far",
            CLOUD_INIT_WAIT.as_secs()
        ),
    }
}

pub struct NodeFile;

impl DocumentSource for NodeFile {
    fn name(&self) -> &'static str {
        "cloud-init write_files"
    }
    fn load(&self, host: &Host, _fetch: &Fetcher) -> Result<Option<Loaded>, SourceError> {
        wait_for_cloud_init(host);
        Ok(host.read_to_string(NODE_FILE).ok().map(|text| Loaded {
            text,
            origin: format!("file {NODE_FILE}"),
            hostname: None,
        }))
    }
}

pub struct CloudInitUserData;

impl DocumentSource for CloudInitUserData {
    fn name(&self) -> &'static str {
        "cloud-init user-data"
    }
    fn load(&self, host: &Host, _fetch: &Fetcher) -> Result<Option<Loaded>, SourceError> {
        wait_for_cloud_init(host);
        let Ok(text) = host.read_to_string(USER_DATA) else {
            return Ok(None);
        };
        Ok(kubeboot_document_in_user_data(&text).map(|text| Loaded {
            text,
            origin: format!("cloud-init user-data {USER_DATA}"),
            hostname: None,
        }))
    }
}
