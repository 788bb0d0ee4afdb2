"""Class mode: a class guesses the next token on their phones, then sees itself beside the model.

* ``codes``: room codes a class can read aloud, teacher tokens nobody can guess;
* ``guesses``: names and guesses checked, and grouped the way a teacher expects;
* ``store``: the rooms in one SQLite file, shared by every session and the command line;
* ``scoring``: the model's side: each guess as the model would write it, and its probability;
* ``game``: the verbs: open, guess, reveal, next round, summary.

``store`` and everything below it import no model code, so a phone's request
(a guess, a poll of the round) never waits for torch. Import from the modules.
"""
