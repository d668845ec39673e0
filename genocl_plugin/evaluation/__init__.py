"""What an update learned, forgot and transferred: metrics, retention, reports, lineage evaluation."""
