"""`make bench`: logoutd's costs against same-run baselines (bench/run.py is the entry point)."""
