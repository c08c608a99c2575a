//! fedstate-scheduler: placement engine and Karmada scheduler extension.
