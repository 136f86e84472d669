//! In-process Coordinator (placeholder until the backend lands).
