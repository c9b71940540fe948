//! CNI 1.1 plugin for weavers. Filled by the containers issue (#4); nothing here yet.
