"""The perturbation family: adversarial training on word embeddings and attention (AT/iAT/VAT/iVAT), similar-word embedding noise and SMART."""
