//! Linux capabilities: parsing names and applying the five OCI capability sets.
