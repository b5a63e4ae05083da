//! Boot tests of the Vestige appliance: see tests/.
