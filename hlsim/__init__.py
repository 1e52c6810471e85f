"""hlsim package."""
