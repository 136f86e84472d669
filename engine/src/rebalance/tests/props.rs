//! Properties of the rebalancer over generated clusters.
