// Argument texts push, pull and status share.

export const REMOTE_ARG =
  'remote URL: file:///abs/path, s3://bucket/prefix, gs://bucket/prefix, http(s)://host:port ' +
  '(default: HOARD_REMOTE, else hoard.toml)';
