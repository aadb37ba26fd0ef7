"""What an instance on Google Cloud asks of its platform: the GCE metadata server (metadata.py:
name, zone, address, project, attributes, the spot preemption notice) and Compute Engine
(compute.py: the members of a training fleet's regional managed instance group).

It sits below the roles: runtime.train uses it, it imports neither runtime.train nor
runtime.serve. google-cloud-compute (the `gcp` extra) is imported only when compute.py's calls
run, so AWS installs never need it.
"""
