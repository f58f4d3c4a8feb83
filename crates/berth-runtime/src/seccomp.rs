//! Seccomp filters built from the OCI config with libseccomp.
