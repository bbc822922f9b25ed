//! sellersync-queue
