"""The API's views: the scheduler as a whole, jobs (tasks), runs."""
