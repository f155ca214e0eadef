"""Work sent to a Ray cluster: generation (generation.py) and training (training.py); the
cluster a process uses (cluster.py). Nothing here is imported unless ``engine => 'ray'`` is asked."""
