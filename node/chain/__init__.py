"""Chain access: contract build, artifacts, the chain client, custom-error decoding, deployment."""
