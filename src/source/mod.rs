//! Where manifests come from: a directory on disk or a git revision, read through one `Fs`
//! trait so the renderer never touches the outside world directly.
