//! rrra-ingest (under construction).
