"""BraTS data: label conventions, the BraTS -> nnU-Net converter and synthetic phantoms."""
