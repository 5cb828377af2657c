//! Where attempt outputs live: the media store. By default a local directory (`DATA_DIR/media`,
//! today's layout); with `[storage] url = "s3://bucket/prefix"` any S3-compatible store (or
//! `gs://bucket/prefix`, Google Cloud Storage; `az://container/prefix`, Azure Blob Storage), so
//! that workers on other machines write outputs the server can serve and QA can read. Which URL
//! opens which client is `open`.
//!
//! Every store is an [`object_store::ObjectStore`]; this module adds what retake needs on top:
//! where a generation writes its files before they are stored, publishing them under
//! `segment-<id>/attempt-<n>/`, the reference recorded on the attempt
//! (`output_video_path`), and resolving a recorded reference back to an object **only inside
//! this store** — a reference that points elsewhere (another directory, the database file, a
//! `..` path, a symlink out, another bucket) resolves to nothing.
//!
//! References: for the local store, the file's path (as before, so existing databases keep
//! working); for other stores, the object's URL (`s3://bucket/prefix/segment-1/attempt-1/x.mp4`).

use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, GetResult, ObjectMeta, ObjectStore, ObjectStoreExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The reference does not name an object of this store.
    #[error("{0}")]
    NotInStore(String),
    #[error("the video no longer exists in the media store")]
    NotFound,
    #[error("the requested byte range is outside the video")]
    BadRange,
    #[error("media store {store}: {message}")]
    Store { store: String, message: String },
}

/// Settings of the media store (the `[storage]` section of the config file).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `s3://bucket/prefix` (or `file:///abs/dir`); absent: `DATA_DIR/media`.
    pub url: Option<String>,
    /// An S3-compatible server's address (MinIO, Ceph, R2, …); also read from `AWS_ENDPOINT`.
    pub endpoint: Option<String>,
    /// Region; also read from `AWS_REGION` / `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
}

/// The media store a process writes outputs to and serves them from.
#[derive(Clone)]
pub struct MediaStore {
    store: Arc<dyn ObjectStore>,
    /// The local store's directory, canonical (`None` for remote stores).
    local_root: Option<PathBuf>,
    /// The store's URL without credentials: `s3://bucket/prefix`, or the local directory.
    url: String,
    /// The object store client behind it, as it names itself (`AmazonS3(bucket)`,
    /// `GoogleCloudStorage(bucket)`, `MicrosoftAzure { account, container }`, `LocalFileSystem(…)`).
    backend: String,
    /// Where generations write before their files are uploaded (remote stores only).
    staging: PathBuf,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStore")
            .field("url", &self.url)
            .finish()
    }
}

pub mod open;

pub(crate) fn store_err(url: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::Store {
        store: url.to_owned(),
        message: e.to_string(),
    }
}

impl MediaStore {
    /// The local store in `dir` (created if missing).
    pub fn local(dir: &Path) -> Result<Self, MediaError> {
        let what = dir.display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| store_err(&what, e))?;
        let root = dir.canonicalize().map_err(|e| store_err(&what, e))?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| store_err(&what, e))?;
        Ok(Self {
            backend: fs.to_string(),
            store: Arc::new(fs),
            url: root.display().to_string(),
            staging: root.clone(),
            local_root: Some(root),
        })
    }

    /// The store `cfg` names, or the local store in `DATA_DIR/media` when it names none.
    /// Credentials come from the environment variables each store's client reads (`AWS_*`,
    /// `GOOGLE_*`, `AZURE_*`; see [`open`]).
    pub fn open(cfg: &StorageConfig, data_dir: &Path) -> Result<Self, MediaError> {
        Self::open_with(cfg, data_dir, &open::Env::Process)
    }

    /// [`MediaStore::open`] with the environment given (tests build every backend without
    /// touching the process's environment).
    pub fn open_with(
        cfg: &StorageConfig,
        data_dir: &Path,
        env: &open::Env,
    ) -> Result<Self, MediaError> {
        let Some(url) = cfg.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            return Self::local(&data_dir.join("media"));
        };
        match open::remote(url, cfg, env)? {
            open::Opened::Local(dir) => Self::local(&dir),
            open::Opened::Remote {
                store,
                url,
                backend,
            } => Ok(Self {
                store,
                local_root: None,
                url,
                backend,
                staging: data_dir.join("staging"),
            }),
        }
    }

    /// `s3://bucket/prefix` or the local directory: for messages and the start-up line.
    pub fn describe(&self) -> &str {
        &self.url
    }

    /// The object store client in use, as it names itself (e.g. `GoogleCloudStorage(bucket)`).
    pub fn backend(&self) -> &str {
        &self.backend
    }

    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// The object key of an attempt's file.
    fn key(segment_id: i64, attempt_number: u32, file: &str) -> String {
        format!("segment-{segment_id}/attempt-{attempt_number}/{file}")
    }

    /// Where a generation writes its files: their final folder in the local store, otherwise a
    /// staging folder uploaded by [`MediaStore::publish`] and then removed.
    pub fn work_dir(&self, segment_id: i64, attempt_number: u32) -> PathBuf {
        let rel = Path::new("")
            .join(format!("segment-{segment_id}"))
            .join(format!("attempt-{attempt_number}"));
        match &self.local_root {
            Some(root) => root.join(rel),
            None => self.staging.join(rel),
        }
    }

    /// Store what a generation produced: every file in its work folder (a ComfyUI run may
    /// download several) and `output` itself, and return the reference to record for `output`.
    /// The local store keeps files where they were written and records `output` as it is.
    pub async fn publish(
        &self,
        segment_id: i64,
        attempt_number: u32,
        work_dir: &Path,
        output: &Path,
    ) -> Result<String, MediaError> {
        if self.is_local() {
            return Ok(output.to_string_lossy().into_owned());
        }
        let mut files = vec![];
        if let Ok(mut rd) = tokio::fs::read_dir(work_dir).await {
            while let Ok(Some(e)) = rd.next_entry().await {
                if e.file_type().await.map(|t| t.is_file()).unwrap_or(false) {
                    files.push(e.path());
                }
            }
        }
        if !files.iter().any(|f| f == output) {
            files.push(output.to_path_buf());
        }
        let mut reference = None;
        for f in &files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| store_err(&self.url, format!("{} has no file name", f.display())))?;
            let key = Self::key(segment_id, attempt_number, &name);
            self.upload(f, &key).await?;
            if f == output {
                reference = Some(format!("{}/{key}", self.url));
            }
        }
        let _ = tokio::fs::remove_dir_all(work_dir).await;
        // The segment's staging folder too, once its last attempt is uploaded.
        if let Some(parent) = work_dir.parent() {
            let _ = tokio::fs::remove_dir(parent).await;
        }
        reference.ok_or_else(|| store_err(&self.url, "the output was not uploaded"))
    }

    /// Upload one file, streaming it (multipart for large files).
    async fn upload(&self, file: &Path, key: &str) -> Result<(), MediaError> {
        let path = ObjectPath::parse(key).map_err(|e| store_err(&self.url, e))?;
        let mut src = tokio::fs::File::open(file)
            .await
            .map_err(|e| store_err(&self.url, format!("reading {}: {e}", file.display())))?;
        let mut w = object_store::buffered::BufWriter::new(self.store.clone(), path);
        let copied = tokio::io::copy(&mut src, &mut w).await;
        match copied {
            Ok(_) => w.shutdown().await.map_err(|e| store_err(&self.url, e)),
            Err(e) => {
                let _ = w.abort().await;
                Err(store_err(&self.url, format!("uploading {key}: {e}")))
            }
        }
    }

    /// The object a recorded reference names, if it is inside this store. Local references are
    /// resolved on disk (symlinks and `..` included) and must stay under the store's directory;
    /// remote ones must start with this store's URL.
    pub fn locate(&self, reference: &str) -> Result<ObjectPath, MediaError> {
        let outside = || {
            tracing::warn!(reference, store = %self.url, "refused media outside the media store");
            MediaError::NotInStore("the video is not inside the media store".into())
        };
        if reference.trim().is_empty() {
            return Err(outside());
        }
        match &self.local_root {
            Some(root) => {
                let p = Path::new(reference);
                let full = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    root.join(p)
                };
                let real = full.canonicalize().map_err(|_| MediaError::NotFound)?;
                if !real.starts_with(root) {
                    return Err(outside());
                }
                if !real.is_file() {
                    return Err(MediaError::NotInStore("the video is not a file".into()));
                }
                let rel = real.strip_prefix(root).map_err(|_| outside())?;
                Ok(ObjectPath::from_iter(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned()),
                ))
            }
            None => {
                let key = reference
                    .strip_prefix(&self.url)
                    .and_then(|k| k.strip_prefix('/'))
                    .ok_or_else(outside)?;
                ObjectPath::parse(key).map_err(|_| outside())
            }
        }
    }

    /// Size, modification time and ETag of a stored object.
    pub async fn head(&self, path: &ObjectPath) -> Result<ObjectMeta, MediaError> {
        self.store.head(path).await.map_err(|e| self.map_err(e))
    }

    /// The object, or the byte range `start..end` of it, as a stream.
    pub async fn get(
        &self,
        path: &ObjectPath,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<GetResult, MediaError> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        self.store
            .get_opts(path, opts)
            .await
            .map_err(|e| self.map_err(e))
    }

    /// A local file with the referenced object's bytes, for tools that need a path (ffmpeg):
    /// the file itself in the local store, otherwise a downloaded temporary copy.
    pub async fn local_copy(&self, reference: &str) -> Result<LocalMedia, MediaError> {
        let path = self.locate(reference)?;
        if let Some(root) = &self.local_root {
            return Ok(LocalMedia::InPlace(
                root.join(
                    path.parts()
                        .map(|p| p.as_ref().to_owned())
                        .collect::<PathBuf>(),
                ),
            ));
        }
        let ext = path
            .extension()
            .map(|e| format!(".{e}"))
            .unwrap_or_default();
        tokio::fs::create_dir_all(&self.staging)
            .await
            .map_err(|e| store_err(&self.url, e))?;
        let tmp = tempfile::Builder::new()
            .prefix("qa-")
            .suffix(&ext)
            .tempfile_in(&self.staging)
            .map_err(|e| store_err(&self.url, e))?;
        let mut out = tokio::fs::File::create(tmp.path())
            .await
            .map_err(|e| store_err(&self.url, e))?;
        let mut stream = self.get(&path, None).await?.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.map_err(e))?;
            out.write_all(&chunk)
                .await
                .map_err(|e| store_err(&self.url, e))?;
        }
        out.flush().await.map_err(|e| store_err(&self.url, e))?;
        Ok(LocalMedia::Downloaded(tmp))
    }

    fn map_err(&self, e: object_store::Error) -> MediaError {
        match e {
            object_store::Error::NotFound { .. } => MediaError::NotFound,
            object_store::Error::NotSupported { .. } => MediaError::BadRange,
            other => {
                let s = other.to_string();
                if s.contains("Range") || s.contains("range") {
                    MediaError::BadRange
                } else {
                    store_err(&self.url, s)
                }
            }
        }
    }
}

/// A local path to a stored video, kept as long as this value lives.
pub enum LocalMedia {
    InPlace(PathBuf),
    Downloaded(tempfile::NamedTempFile),
}

impl LocalMedia {
    pub fn path(&self) -> &Path {
        match self {
            LocalMedia::InPlace(p) => p,
            LocalMedia::Downloaded(t) => t.path(),
        }
    }
}
