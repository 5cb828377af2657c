//! Which `[storage] url` opens which object store client, with its credentials from the
//! environment variables that client reads:
//!
//! | URL | store | credentials and settings |
//! |---|---|---|
//! | `s3://bucket/prefix` (`s3a://`) | Amazon S3 or any S3-compatible server | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT` (or `[storage] endpoint`, `region`), … |
//! | `gs://bucket/prefix` | Google Cloud Storage | `GOOGLE_SERVICE_ACCOUNT` (a key file's path), `GOOGLE_SERVICE_ACCOUNT_KEY` (its JSON), `GOOGLE_APPLICATION_CREDENTIALS`, else the instance's metadata server |
//! | `az://container/prefix`, `azure://container/prefix` | Azure Blob Storage | `AZURE_STORAGE_ACCOUNT_NAME` (required) and `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_KEY`, `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET` + `AZURE_TENANT_ID`, else a managed identity; `AZURE_STORAGE_USE_EMULATOR=true` for Azurite |
//! | `file:///abs/dir` | a local directory | — |
//! | `memory://` | in memory (tests) | — |
//!
//! Building a client reads configuration only; nothing here touches the network. Every refusal
//! names the field (`storage.url`, `storage.endpoint`, `storage.region`) and what would work.

use super::{store_err, MediaError, StorageConfig};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the clients read their settings from.
#[derive(Debug, Clone)]
pub enum Env {
    /// The process's environment (each client's own `from_env`).
    Process,
    /// These variables only (tests).
    Given(Vec<(String, String)>),
}

impl Env {
    fn var(&self, key: &str) -> Option<String> {
        match self {
            Env::Process => std::env::var(key).ok(),
            Env::Given(vars) => vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
        }
    }

    /// A builder with the given variables starting with `prefix` applied, the way the client's
    /// `from_env` applies the process's: lower-cased variable names are its config keys.
    fn configure<B, K: std::str::FromStr>(
        &self,
        from_env: fn() -> B,
        new: fn() -> B,
        prefix: &str,
        set: fn(B, K, &str) -> B,
    ) -> B {
        match self {
            Env::Process => from_env(),
            Env::Given(vars) => {
                vars.iter()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .fold(new(), |b, (k, v)| match k.to_ascii_lowercase().parse() {
                        Ok(key) => set(b, key, v),
                        Err(_) => b,
                    })
            }
        }
    }
}

pub(crate) enum Opened {
    Local(PathBuf),
    Remote {
        store: Arc<dyn ObjectStore>,
        /// `scheme://bucket/prefix`, without credentials: recorded references start with it.
        url: String,
        /// The client as it names itself.
        backend: String,
    },
}

fn refused(url: &str, message: impl std::fmt::Display) -> MediaError {
    store_err(url, format!("storage.url: {message}"))
}

const SCHEMES: &str = "s3://bucket/prefix (any S3-compatible store), gs://bucket/prefix (Google Cloud Storage), az://container/prefix or azure://container/prefix (Azure Blob Storage), file:///absolute/dir";

/// The store `url` names (not empty).
pub(crate) fn remote(url: &str, cfg: &StorageConfig, env: &Env) -> Result<Opened, MediaError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| refused(url, format!("not a URL ({e}); use {SCHEMES}")))?;
    let scheme = parsed.scheme().to_owned();
    if !matches!(scheme.as_str(), "s3" | "s3a") {
        if cfg.region.is_some() {
            return Err(store_err(
                url,
                "storage.region applies to s3:// stores only; remove it",
            ));
        }
        if cfg.endpoint.is_some() && !matches!(scheme.as_str(), "az" | "azure") {
            return Err(store_err(
                url,
                "storage.endpoint applies to s3:// and az:// stores only; remove it",
            ));
        }
    }
    let bucket = || {
        parsed
            .host_str()
            .filter(|b| !b.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                refused(
                    url,
                    format!("no bucket or container in the URL; use {SCHEMES}"),
                )
            })
    };
    let prefix = parsed.path().trim_matches('/').to_owned();
    let (store, backend): (Arc<dyn ObjectStore>, String) = match scheme.as_str() {
        "file" => {
            let dir = parsed
                .to_file_path()
                .map_err(|_| refused(url, "a file:// URL needs an absolute path"))?;
            return Ok(Opened::Local(dir));
        }
        "memory" => {
            let m = object_store::memory::InMemory::new();
            let name = m.to_string();
            return Ok(Opened::Remote {
                store: Arc::new(m),
                url: "memory://".into(),
                backend: name,
            });
        }
        "s3" | "s3a" => {
            let mut b = env
                .configure(
                    AmazonS3Builder::from_env,
                    AmazonS3Builder::new,
                    "AWS_",
                    |b, k, v| b.with_config(k, v),
                )
                .with_bucket_name(bucket()?);
            let endpoint = cfg
                .endpoint
                .clone()
                .or_else(|| env.var("AWS_ENDPOINT"))
                .or_else(|| env.var("AWS_ENDPOINT_URL"));
            if let Some(e) = &endpoint {
                b = b.with_endpoint(e);
                // A self-hosted S3-compatible server is often plain HTTP on a private network,
                // and addressed by path (`endpoint/bucket/key`).
                if e.starts_with("http://") {
                    b = b.with_allow_http(true);
                }
                b = b.with_virtual_hosted_style_request(false);
            }
            if let Some(r) = cfg.region.as_deref() {
                b = b.with_region(r);
            }
            let s3 = b.build().map_err(|e| refused(url, e))?;
            let name = s3.to_string();
            (Arc::new(s3) as Arc<dyn ObjectStore>, name)
        }
        "gs" => {
            let gcs = env
                .configure(
                    GoogleCloudStorageBuilder::from_env,
                    GoogleCloudStorageBuilder::new,
                    "GOOGLE_",
                    |b, k, v| b.with_config(k, v),
                )
                .with_bucket_name(bucket()?)
                .build()
                .map_err(|e| {
                    refused(
                        url,
                        format!("{e} (Google Cloud Storage reads GOOGLE_SERVICE_ACCOUNT, GOOGLE_SERVICE_ACCOUNT_KEY or GOOGLE_APPLICATION_CREDENTIALS)"),
                    )
                })?;
            let name = gcs.to_string();
            (Arc::new(gcs) as Arc<dyn ObjectStore>, name)
        }
        "az" | "azure" => {
            let mut b = env
                .configure(
                    MicrosoftAzureBuilder::from_env,
                    MicrosoftAzureBuilder::new,
                    "AZURE_",
                    |b, k, v| b.with_config(k, v),
                )
                .with_container_name(bucket()?);
            if let Some(e) = &cfg.endpoint {
                b = b.with_endpoint(e.clone());
                if e.starts_with("http://") {
                    b = b.with_allow_http(true);
                }
            }
            let az = b.build().map_err(|e| {
                refused(
                    url,
                    format!("{e} (Azure Blob Storage needs AZURE_STORAGE_ACCOUNT_NAME and a credential: AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY, AZURE_CLIENT_ID with AZURE_CLIENT_SECRET and AZURE_TENANT_ID, or a managed identity)"),
                )
            })?;
            let name = az.to_string();
            (Arc::new(az) as Arc<dyn ObjectStore>, name)
        }
        other => {
            return Err(refused(
                url,
                format!("unsupported scheme `{other}`; use {SCHEMES}"),
            ))
        }
    };
    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        store
    } else {
        let p = ObjectPath::parse(&prefix).map_err(|e| refused(url, e))?;
        Arc::new(PrefixStore::new(store, p))
    };
    let host = parsed.host_str().unwrap_or_default();
    let url = if prefix.is_empty() {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}/{prefix}")
    };
    Ok(Opened::Remote {
        store,
        url,
        backend,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{MediaStore, StorageConfig};
    use super::*;

    fn open(url: &str, vars: &[(&str, &str)]) -> Result<MediaStore, MediaError> {
        open_cfg(
            StorageConfig {
                url: Some(url.into()),
                ..Default::default()
            },
            vars,
        )
    }

    fn open_cfg(cfg: StorageConfig, vars: &[(&str, &str)]) -> Result<MediaStore, MediaError> {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::Given(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        MediaStore::open_with(&cfg, dir.path(), &env)
    }

    /// A syntactically valid Azure account key (base64).
    const AZURE_KEY: &str = "ZmFrZS1rZXktZm9yLXRlc3Rz";

    #[test]
    fn s3_urls_open_the_s3_client() {
        let m = open(
            "s3://outputs/studio/retake",
            &[
                ("AWS_ACCESS_KEY_ID", "id"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_REGION", "eu-west-1"),
            ],
        )
        .unwrap();
        assert_eq!(m.backend(), "AmazonS3(outputs)");
        assert_eq!(m.describe(), "s3://outputs/studio/retake");
        assert!(!m.is_local());
    }

    #[test]
    fn gs_urls_open_google_cloud_storage() {
        let m = open("gs://render-bucket/retake/outputs", &[]).unwrap();
        assert_eq!(m.backend(), "GoogleCloudStorage(render-bucket)");
        assert_eq!(m.describe(), "gs://render-bucket/retake/outputs");
        let reference = "gs://render-bucket/retake/outputs/segment-1/attempt-1/a.mp4";
        assert_eq!(
            m.locate(reference).unwrap().as_ref(),
            "segment-1/attempt-1/a.mp4"
        );
        // Another bucket, or the same bucket outside the prefix, is not this store's.
        assert!(m
            .locate("gs://other/retake/outputs/segment-1/attempt-1/a.mp4")
            .is_err());
        assert!(m.locate("gs://render-bucket/elsewhere/a.mp4").is_err());
    }

    #[test]
    fn az_and_azure_urls_open_azure_blob_storage_with_the_account_from_the_environment() {
        let vars = [
            ("AZURE_STORAGE_ACCOUNT_NAME", "studioacct"),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURE_KEY),
        ];
        for scheme in ["az", "azure"] {
            let m = open(&format!("{scheme}://renders/retake"), &vars).unwrap();
            assert_eq!(
                m.backend(),
                "MicrosoftAzure { account: studioacct, container: renders }"
            );
            assert_eq!(m.describe(), format!("{scheme}://renders/retake"));
        }
        let m = open("az://renders", &vars).unwrap();
        assert_eq!(m.describe(), "az://renders");
        assert_eq!(
            m.locate("az://renders/segment-2/attempt-1/v.mp4")
                .unwrap()
                .as_ref(),
            "segment-2/attempt-1/v.mp4"
        );
    }

    #[test]
    fn azure_without_an_account_names_the_field_and_the_variable() {
        let e = open("az://renders/retake", &[]).unwrap_err().to_string();
        assert!(
            e.contains("storage.url") && e.contains("AZURE_STORAGE_ACCOUNT_NAME"),
            "{e}"
        );
    }

    #[test]
    fn unknown_schemes_are_refused_naming_the_field_and_what_works() {
        for url in ["ftp://host/dir", "gcs://b/p", "http://example.com/bucket"] {
            let e = open(url, &[]).unwrap_err().to_string();
            assert!(
                e.contains("storage.url")
                    && e.contains("unsupported scheme")
                    && e.contains("gs://")
                    && e.contains("az://"),
                "{url}: {e}"
            );
        }
        let e = open("not a url", &[]).unwrap_err().to_string();
        assert!(e.contains("storage.url") && e.contains("not a URL"), "{e}");
        let e = open("gs:///prefix-only", &[]).unwrap_err().to_string();
        assert!(e.contains("storage.url") && e.contains("no bucket"), "{e}");
    }

    #[test]
    fn s3_only_settings_on_another_store_are_refused_naming_them() {
        let e = open_cfg(
            StorageConfig {
                url: Some("gs://b/p".into()),
                region: Some("eu-west-1".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("storage.region"), "{e}");
        let e = open_cfg(
            StorageConfig {
                url: Some("gs://b/p".into()),
                endpoint: Some("http://127.0.0.1:9000".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("storage.endpoint"), "{e}");
    }

    #[test]
    fn file_urls_and_no_url_are_local_directories() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path())
            .unwrap()
            .to_string();
        let m = open(&url, &[]).unwrap();
        assert!(m.is_local());
        assert!(
            m.backend().starts_with("LocalFileSystem("),
            "{}",
            m.backend()
        );
        let m = open_cfg(StorageConfig::default(), &[]).unwrap();
        assert!(m.is_local());
    }
}
