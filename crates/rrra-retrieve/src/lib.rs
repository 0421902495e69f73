//! rrra-retrieve (under construction).
