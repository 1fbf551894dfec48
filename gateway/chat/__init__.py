"""Chat completions over video jobs, and the model list chat clients fill their pickers from."""
