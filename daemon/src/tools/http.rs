//! `POST /tools/invoke`.
