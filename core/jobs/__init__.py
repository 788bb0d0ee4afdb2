"""What every background job shares, whatever it does.

A job is long work that must not run inside the web server: fine-tuning an
adapter, pretraining a tiny model, timing a few training steps, training a
ladder of models. Each is its own process with its state in a folder, so a
page only reads files and a refreshed tab re-attaches. This package holds
the parts every kind uses:

* ``paths``: the data folder, safe names, atomic claims of new folders;
* ``files``: JSON and folders that are always whole (temp file, then rename);
* ``processes``: a process named by pid and start time, alive or not;
* ``folder``: a job's files, its kind, and ``read_job`` (which tells the truth about a dead process);
* ``lock``: one training job per machine;
* ``launcher``: starting a job's process, and the life every job leads in it;
* ``stop``: Cancel, SIGTERM and SIGINT as one stop request;
* ``progress``: the Trainer callbacks that write progress and obey the stop request;
* ``training``: the evaluate → train → save → record skeleton and its typed result;
* ``outputs``: what a training job saved (its folder, training.json, model card), as a list shows it.

Kinds (``core.finetune``, ``core.pretrain``) import from here; nothing here
imports a kind.
"""
