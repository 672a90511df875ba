"""Where point layouts come from when the user gives none: real tables, perturbed ones, point processes."""
