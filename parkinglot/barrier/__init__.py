"""barrier"""
